"""The vector index in chromadb: idempotent upserts by id, filtered queries, deletes.

Embedded ``PersistentClient`` in a folder by default (``<data dir>/search``), or a Chroma
server's ``HttpClient``. Chroma never embeds anything itself here (its default embedding
function would download a model): every vector comes from the caller.

Filters are part of the vector query (:func:`where_filter`): the caller's camera scope, a
camera, label, kind and time bounds go into Chroma's ``where``, so the top-k is taken among
the items the caller may see, never cut down afterwards.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
from numpy.typing import NDArray

from sentinel.search.documents import SearchDocument

__all__ = [
    "APPEARANCE",
    "COLLECTION",
    "Index",
    "IndexReader",
    "IndexUnavailableError",
    "SearchFilter",
    "SearchHit",
    "VectorIndex",
    "where_filter",
]

COLLECTION = "sentinel_search"
APPEARANCE = "sentinel_appearance"  # the events' appearance vectors (search by example)


class IndexUnavailableError(RuntimeError):
    """The index cannot be reached now (its owner is not running)."""


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What a query is limited to. ``cameras`` is the caller's scope: None is every camera,
    an empty set none at all."""

    cameras: frozenset[str] | None = None
    camera_id: str | None = None
    label: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches_nothing(self) -> bool:
        """Whether no item can match (an empty scope, or a camera outside it)."""
        if self.cameras is None:
            return False
        return not self.cameras or (
            self.camera_id is not None and self.camera_id not in self.cameras
        )


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: the item, its similarity (cosine, higher is closer), text and metadata."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]


def where_filter(flt: SearchFilter) -> dict[str, Any] | None:
    """Chroma's ``where`` for ``flt`` (None: no condition).

    Raises:
        ValueError: If the filter matches nothing (callers check ``matches_nothing`` first:
            Chroma has no "false" condition).
    """
    if flt.matches_nothing():
        raise ValueError("the filter matches nothing")
    terms: list[dict[str, Any]] = []
    if flt.camera_id is not None:
        terms.append({"camera_id": flt.camera_id})
    elif flt.cameras is not None:
        terms.append({"camera_id": {"$in": sorted(flt.cameras)}})
    if flt.label is not None:
        terms.append({"label": flt.label})
    if flt.kind is not None:
        terms.append({"kind": flt.kind})
    if flt.since is not None:
        terms.append({"start": {"$gte": int(flt.since.timestamp())}})
    if flt.until is not None:
        terms.append({"start": {"$lte": int(flt.until.timestamp())}})
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"$and": terms}


class IndexReader(Protocol):
    """What queries need of an index: a ``VectorIndex``, or a proxy to the process that owns
    it (the indexer actor, :class:`sentinel.actors.indexer.ActorIndex`)."""

    def query(
        self, vector: NDArray[np.float32], flt: SearchFilter, k: int, *, exclude: str | None = None
    ) -> list[SearchHit]: ...

    def vector(self, item_id: str) -> NDArray[np.float32] | None: ...

    def count(self) -> int: ...


class Index(IndexReader, Protocol):
    """Everything the indexer needs of an index (``VectorIndex`` or a proxy to it)."""

    def upsert(self, docs: Sequence[SearchDocument], vectors: NDArray[np.float32]) -> None: ...

    def delete(self, ids: Collection[str]) -> None: ...

    def ids(self, batch: int = 5000) -> list[str]: ...

    def get(self, item_id: str) -> SearchHit | None: ...


class VectorIndex:
    """One Chroma collection of event and incident documents (cosine space).

    Args:
        path: Folder of the embedded persistent store (ignored with ``url``).
        url: A Chroma server, ``http://host:port``.
        collection: The collection's name.
    """

    def __init__(
        self, path: Path | None = None, *, url: str | None = None, collection: str = COLLECTION
    ) -> None:
        import chromadb  # heavy; only here
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in {"http", "https"} or not parsed.hostname:
                raise ValueError(f"search.chroma_url must be http(s)://host:port, got {url!r}")
            self._client: Any = chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 80),
                ssl=parsed.scheme == "https",
                settings=chroma_settings,
            )
        else:
            if path is None:
                raise ValueError("a path or a url is needed")
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        self._collection: Any = self._client.get_or_create_collection(
            name=collection, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    def upsert(self, docs: Sequence[SearchDocument], vectors: NDArray[np.float32]) -> None:
        """Write ``docs`` with their vectors; an id already there is replaced (idempotent)."""
        if len(docs) != len(vectors):
            raise ValueError(f"{len(docs)} documents but {len(vectors)} vectors")
        if not docs:
            return
        self._collection.upsert(
            ids=[d.id for d in docs],
            embeddings=np.asarray(vectors, dtype=np.float32),
            documents=[d.text for d in docs],
            metadatas=[d.metadata for d in docs],
        )

    def delete(self, ids: Collection[str]) -> None:
        """Remove ``ids`` (ids not in the index are ignored)."""
        if ids:
            self._collection.delete(ids=list(ids))

    def count(self) -> int:
        return int(self._collection.count())

    def ids(self, batch: int = 5000) -> list[str]:
        """Every id in the index."""
        out: list[str] = []
        offset = 0
        while True:
            got = self._collection.get(include=[], limit=batch, offset=offset)
            out.extend(got["ids"])
            if len(got["ids"]) < batch:
                return out
            offset += batch

    def vector(self, item_id: str) -> NDArray[np.float32] | None:
        """The stored vector of ``item_id``, or None if it is not indexed."""
        got = self._collection.get(ids=[item_id], include=["embeddings"])
        if not got["ids"]:
            return None
        return np.asarray(got["embeddings"][0], dtype=np.float32)

    def get(self, item_id: str) -> SearchHit | None:
        """The indexed text and metadata of ``item_id`` (score 1), or None."""
        got = self._collection.get(ids=[item_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return SearchHit(item_id, 1.0, got["documents"][0], dict(got["metadatas"][0]))

    def query(
        self, vector: NDArray[np.float32], flt: SearchFilter, k: int, *, exclude: str | None = None
    ) -> list[SearchHit]:
        """The ``k`` nearest items that pass ``flt``, closest first (``exclude``: an id left
        out, e.g. the example itself)."""
        if k < 1:
            raise ValueError(f"k must be positive, but got {k}")
        if flt.matches_nothing():
            return []
        where = where_filter(flt)
        # Chroma's ``where`` cannot exclude an id: fetch one more and drop the example.
        result = self._collection.query(
            query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            n_results=k + (1 if exclude is not None else 0),
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        hits = [
            SearchHit(i, 1.0 - float(dist), doc, dict(meta))
            for i, dist, doc, meta in zip(
                result["ids"][0],
                result["distances"][0],
                result["documents"][0],
                result["metadatas"][0],
                strict=True,
            )
            if i != exclude
        ]
        return hits[:k]
