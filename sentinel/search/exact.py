"""Exact nearest-neighbour search over one camera's items, in memory (pure numpy).

A query limited to a few cameras is selective: it searches a small share of the store. Chroma
answers each shard query with a fixed cost of about a millisecond (its own bookkeeping before
any vector is compared), so a scope of five cameras paid five of them. A shard of a few
thousand items is searched exactly in less than that: one matrix product. :class:`ShardMirror`
holds a shard's unit vectors, texts, metadata and filter fields (label and kind as small
integer codes, start) and answers the top-k that pass a filter's bounds, exactly — where HNSW
is approximate.
The index (:class:`~sentinel.search.index.VectorIndex`) keeps mirrors coherent with the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ShardMirror"]

_NO_START = np.iinfo(np.int64).min  # an item without a start never passes a time bound


class ShardMirror:
    """One shard's items in memory: ids, unit vectors, texts, metadata and filter fields,
    searched exactly.

    Scores are cosine similarities, as the index's (``1 - cosine distance``).
    """

    def __init__(self, dim: int | None = None) -> None:
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._dim = dim
        self._matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._texts: list[str] = []
        self._metas: list[dict[str, Any]] = []
        self._codes: dict[object, int] = {}  # label and kind values -> small integers
        self._label = np.zeros(0, dtype=np.int32)
        self._kind = np.zeros(0, dtype=np.int32)
        self._start = np.zeros(0, dtype=np.int64)
        self.stamp = 0.0  # the newest write time (``indexed_at``) among the items seen

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def item(self, item_id: str) -> tuple[str, dict[str, Any]]:
        """The text and metadata of ``item_id`` (KeyError if it is not here)."""
        row = self._row[item_id]
        return self._texts[row], dict(self._metas[row])

    def upsert(
        self,
        ids: Sequence[str],
        vectors: NDArray[np.float32] | Sequence[Sequence[float]],
        metas: Sequence[Mapping[str, Any] | None],
        texts: Sequence[str | None] | None = None,
    ) -> None:
        """Adds ``ids`` or replaces them (vectors are normalised; a zero vector scores 0)."""
        if not ids:
            return
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        if len(metas) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(metas)} metadata")
        if texts is None:
            texts = [""] * len(ids)
        elif len(texts) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        if self._dim is None:
            self._dim = matrix.shape[1]
            self._matrix = np.zeros((0, self._dim), dtype=np.float32)
        if matrix.shape[1] != self._dim:
            raise ValueError(f"vectors of {matrix.shape[1]} dimensions in a {self._dim}-d shard")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        # The last of an id repeated within the batch wins, as in Chroma.
        last = {item_id: i for i, item_id in enumerate(ids)}
        old = [(self._row[i], j) for i, j in last.items() if i in self._row]
        new = [(i, j) for i, j in last.items() if i not in self._row]
        for row, j in old:
            self._matrix[row] = matrix[j]
            self._set_fields(row, metas[j], texts[j])
        if new:
            base = len(self._ids)
            take = [j for _, j in new]
            self._matrix = np.concatenate([self._matrix, matrix[take]])
            self._label = np.concatenate([self._label, np.zeros(len(new), dtype=np.int32)])
            self._kind = np.concatenate([self._kind, np.zeros(len(new), dtype=np.int32)])
            self._start = np.concatenate([self._start, np.full(len(new), _NO_START)])
            for n, (item_id, j) in enumerate(new):
                self._ids.append(item_id)
                self._texts.append("")
                self._metas.append({})
                self._row[item_id] = base + n
                self._set_fields(base + n, metas[j], texts[j])
        for meta in metas:
            stamp = (meta or {}).get("indexed_at")
            if isinstance(stamp, int | float) and stamp > self.stamp:
                self.stamp = float(stamp)

    def _code(self, value: object) -> int:
        """The small integer standing for a label or kind (0: none)."""
        if value is None:
            return 0
        return self._codes.setdefault(value, len(self._codes) + 1)

    def _set_fields(self, row: int, meta: Mapping[str, Any] | None, text: str | None) -> None:
        meta = dict(meta or {})
        self._texts[row] = text or ""
        self._metas[row] = meta
        self._label[row] = self._code(meta.get("label"))
        self._kind[row] = self._code(meta.get("kind"))
        start = meta.get("start")
        self._start[row] = start if isinstance(start, int) else _NO_START

    def remove(self, ids: Sequence[str]) -> None:
        """Drops ``ids`` (ids not here are ignored)."""
        gone = {self._row[i] for i in ids if i in self._row}
        if not gone:
            return
        keep = np.array([r for r in range(len(self._ids)) if r not in gone], dtype=np.int64)
        self._ids = [self._ids[r] for r in keep]
        self._texts = [self._texts[r] for r in keep]
        self._metas = [self._metas[r] for r in keep]
        self._row = {item_id: r for r, item_id in enumerate(self._ids)}
        self._matrix = self._matrix[keep]
        self._label = self._label[keep]
        self._kind = self._kind[keep]
        self._start = self._start[keep]

    def top(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        label: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` items closest to ``query`` among those that pass the bounds, closest
        first, as (id, cosine similarity)."""
        if k < 1 or not self._ids:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f"a {q.shape[0]}-d query in a {self._dim}-d shard")
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        mask: NDArray[np.bool_] | None = None
        terms: list[NDArray[np.bool_]] = []
        for value, codes in ((label, self._label), (kind, self._kind)):
            if value is not None:
                code = self._codes.get(value)
                if code is None:
                    return []  # no item has it
                terms.append(codes == code)
        if since is not None:
            terms.append(self._start >= int(since.timestamp()))
        if until is not None:
            terms.append((self._start <= int(until.timestamp())) & (self._start != _NO_START))
        for term in terms:
            mask = term if mask is None else mask & term
        if mask is None:
            rows = None
            scores = self._matrix @ q
        else:
            rows = np.flatnonzero(mask)
            if rows.size == 0:
                return []
            scores = self._matrix[rows] @ q
        if scores.shape[0] > k:
            best = np.argpartition(-scores, k - 1)[:k]
        else:
            best = np.arange(scores.shape[0])
        best = best[np.argsort(-scores[best], kind="stable")]
        picked = best if rows is None else rows[best]
        return [(self._ids[r], float(scores[b])) for r, b in zip(picked, best, strict=True)]
