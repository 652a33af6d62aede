"""The vector index in chromadb: idempotent upserts by id, filtered queries, deletes.

Embedded ``PersistentClient`` in a folder by default (``<data dir>/search``), or a Chroma
server's ``HttpClient``. Chroma never embeds anything itself here (its default embedding
function would download a model): every vector comes from the caller.

Filters are part of the vector query: the top-k is taken among the items the caller may see,
never cut down afterwards. Each item is kept twice: in the main collection and in its camera's
shard (one collection per camera). A query limited to a few cameras (a camera, or a limited
user's scope) searches only those cameras' shards and merges them, so the scope decides which
vectors are searched at all; Chroma's metadata ``where`` (:func:`where_filter`), which scans
the metadata of every item of the store (hundreds of ms at 100,000 items), is the fallback for
a scope of many cameras. Label, kind and time bounds are checked on an over-fetched top list
and, when fewer than k of it pass, asked of Chroma's ``where`` exactly.

**Small shards are searched exactly, in memory.** Such a query is selective, and Chroma costs
about a millisecond per call before it compares a vector; a shard of up to
``exact_shard_max_items`` items is mirrored in memory (:class:`ShardMirror`: vectors, texts and
metadata; one matrix product, the exact top-k, filters exact too) within ``exact_max_items``
in all (the least recently searched shards are let go). Chroma stays the store of record, and a
mirror is read from it whole the first time its camera is searched. Coherence:

- *Embedded store* (one process owns it: the indexer actor; Chroma's embedded store is not
  shared between processes): the mirrors are shared by every index of that store in the
  process, and every write (upsert, delete) updates them as it updates Chroma. A scoped query
  makes no Chroma call at all.
- *Chroma server* (writers may be other processes, on other nodes): every write ends by giving
  its cameras a new token in a versions collection; a scoped query reads its cameras' tokens in
  one call and brings a mirror whose token changed up to date first (the items written since
  its newest write time, less a margin; the whole shard when the counts then differ, as after
  a delete).

Either way a write finished before a query began is seen by it.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
from numpy.typing import NDArray

from sentinel.search.documents import SearchDocument
from sentinel.search.exact import ShardMirror

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
# A scope of at most this many cameras is searched shard by shard; a wider one in the main
# collection with the cameras in Chroma's ``where``.
MAX_SHARDS_PER_QUERY = 12
OVERFETCH = 4  # label/kind/time checked on the top OVERFETCH * k (at least MIN_FETCH) first
MIN_FETCH = 40
OVERFETCH_WIDER = 8  # then 8 times as many, before Chroma's where (which scans the store)
_INCLUDE = ["documents", "metadatas", "distances"]
# Shards of up to this many items are mirrored in memory and searched exactly; at most this
# many items are mirrored in all (384-d float32 with text and metadata: about 2.5 KiB each).
EXACT_SHARD_MAX_ITEMS = 20_000
EXACT_MAX_ITEMS = 100_000
# A mirror brought up to date reads the items written since its newest write time less this
# (writers' clocks may differ a little; an item read twice is simply replaced).
REFRESH_MARGIN_S = 60.0
_PAGE = 5000


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


def where_filter(flt: SearchFilter, *, cameras: bool = True) -> dict[str, Any] | None:
    """Chroma's ``where`` for ``flt`` (None: no condition); ``cameras=False`` leaves the
    camera terms out (a query that searches the cameras' shards).

    Raises:
        ValueError: If the filter matches nothing (callers check ``matches_nothing`` first:
            Chroma has no "false" condition).
    """
    if flt.matches_nothing():
        raise ValueError("the filter matches nothing")
    terms: list[dict[str, Any]] = []
    if not cameras:
        pass
    elif flt.camera_id is not None:
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


def scoped_cameras(flt: SearchFilter) -> list[str] | None:
    """The cameras whose shards a query searches, or None for the main collection."""
    if flt.camera_id is not None:
        return [flt.camera_id]
    if flt.cameras is not None and len(flt.cameras) <= MAX_SHARDS_PER_QUERY:
        return sorted(flt.cameras)
    return None


def passes(meta: dict[str, Any], flt: SearchFilter, *, cameras: bool = True) -> bool:
    """Whether an item's metadata passes ``flt`` (the terms :func:`where_filter` gives
    Chroma; its camera terms only when ``cameras``)."""
    if cameras and flt.camera_id is not None and meta.get("camera_id") != flt.camera_id:
        return False
    if cameras and flt.cameras is not None and meta.get("camera_id") not in flt.cameras:
        return False
    if flt.label is not None and meta.get("label") != flt.label:
        return False
    if flt.kind is not None and meta.get("kind") != flt.kind:
        return False
    start = meta.get("start")
    if flt.since is not None and not (
        isinstance(start, int) and start >= int(flt.since.timestamp())
    ):
        return False
    return flt.until is None or (isinstance(start, int) and start <= int(flt.until.timestamp()))


def shard_name(collection: str, camera_id: str) -> str:
    """The Chroma collection of one camera's items (Chroma's names allow few characters)."""
    digest = hashlib.sha256(camera_id.encode()).hexdigest()[:20]
    return f"{collection}-cam-{digest}"


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

    def present(self, ids: Collection[str]) -> list[str]: ...

    def ids(self, batch: int = 5000) -> list[str]: ...

    def get(self, item_id: str) -> SearchHit | None: ...


class VectorIndex:
    """A Chroma collection of event and incident documents (cosine space), with one shard
    collection per camera beside it (see the module's doc).

    Args:
        path: Folder of the embedded persistent store (ignored with ``url``).
        url: A Chroma server, ``http://host:port``.
        collection: The collection's name.
        exact_shard_max_items: Shards of up to this many items are searched exactly in
            memory (0: never; Chroma's HNSW searches every shard).
        exact_max_items: The most items mirrored in memory in all.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str | None = None,
        collection: str = COLLECTION,
        exact_shard_max_items: int = EXACT_SHARD_MAX_ITEMS,
        exact_max_items: int = EXACT_MAX_ITEMS,
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
        self._name = collection
        self._collection: Any = self._collection_of(collection)
        self._shards: dict[str, Any] = {}
        self._exact_shard_max = max(0, exact_shard_max_items)
        self._exact_max = max(0, exact_max_items)
        # Tokens only for a server; an embedded store's mirrors are shared in the process.
        self._tokened = url is not None
        self._versions: Any = (
            self._collection_of(f"{collection}-versions") if self._tokened else None
        )
        mirrors = _Mirrors() if url or path is None else _embedded_mirrors(path, collection)
        self._mirrors, self._lock = mirrors.by_camera, mirrors.lock
        self._shard_all()

    def _collection_of(self, name: str) -> Any:
        return self._client.get_or_create_collection(
            name=name, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    def _shard(self, camera_id: str) -> Any:
        shard = self._shards.get(camera_id)
        if shard is None:
            shard = self._shards[camera_id] = self._collection_of(shard_name(self._name, camera_id))
        return shard

    def _shard_all(self, batch: int = 2000) -> None:
        """Copies an index written before shards existed into its cameras' shards, once (a
        marker collection records that it is done; a copy cut short is redone, idempotently)."""
        marker = f"{self._name}-sharded"
        names = {getattr(c, "name", c) for c in self._client.list_collections()}
        if marker in names:
            return
        offset = 0
        while True:
            got = self._collection.get(
                include=["embeddings", "documents", "metadatas"], limit=batch, offset=offset
            )
            if not got["ids"]:
                break
            self._write_shards(
                got["ids"],
                np.asarray(got["embeddings"], dtype=np.float32),
                got["documents"],
                got["metadatas"],
            )
            offset += len(got["ids"])
        self._collection_of(marker)

    def _write_shards(
        self,
        ids: Sequence[str],
        vectors: NDArray[np.float32],
        texts: Sequence[str],
        metas: Sequence[dict[str, Any]],
    ) -> None:
        for camera_id, rows in _by_camera(metas).items():
            self._shard(camera_id).upsert(
                ids=[ids[i] for i in rows],
                embeddings=vectors[rows],
                documents=[texts[i] for i in rows],
                metadatas=[metas[i] for i in rows],
            )

    def upsert(self, docs: Sequence[SearchDocument], vectors: NDArray[np.float32]) -> None:
        """Write ``docs`` with their vectors; an id already there is replaced (idempotent).
        The camera's shard first: a write cut short between the two is redone by the retry."""
        if len(docs) != len(vectors):
            raise ValueError(f"{len(docs)} documents but {len(vectors)} vectors")
        if not docs:
            return
        ids, texts = [d.id for d in docs], [d.text for d in docs]
        stamp = time.time()
        metas: list[dict[str, Any]] = [{**d.metadata, "indexed_at": stamp} for d in docs]
        matrix = np.asarray(vectors, dtype=np.float32)
        self._write_shards(ids, matrix, texts, metas)
        self._collection.upsert(ids=ids, embeddings=matrix, documents=texts, metadatas=metas)
        cameras = _by_camera(metas)
        with self._lock:
            for camera_id, rows in cameras.items():
                entry = self._mirrors.get(camera_id)
                if entry is None or entry[1] is None:
                    continue
                mirror = entry[1]
                mirror.upsert(
                    [ids[i] for i in rows],
                    matrix[rows],
                    [metas[i] for i in rows],
                    [texts[i] for i in rows],
                )
                if len(mirror) > self._exact_shard_max:
                    self._mirrors[camera_id] = (entry[0], None)  # too big now
        self._bump(cameras)

    def delete(self, ids: Collection[str]) -> None:
        """Remove ``ids`` (ids not in the index are ignored): from their cameras' shards
        first, found by the main collection's metadata, then from the main collection."""
        if not ids:
            return
        wanted = list(ids)
        got = self._collection.get(ids=wanted, include=["metadatas"])
        cameras = _by_camera(got["metadatas"])
        for camera_id, rows in cameras.items():
            self._shard(camera_id).delete(ids=[got["ids"][i] for i in rows])
        self._collection.delete(ids=wanted)
        with self._lock:
            for camera_id in cameras:
                entry = self._mirrors.get(camera_id)
                if entry is not None and entry[1] is not None:
                    entry[1].remove(wanted)
                elif entry is not None:
                    del self._mirrors[camera_id]  # too big before: small enough now?
        self._bump(cameras)

    def _bump(self, cameras: Collection[str]) -> None:
        """New tokens for ``cameras`` of a server's store: their shards changed (see the
        module's doc)."""
        if not cameras or not self._tokened:
            return
        names = sorted(cameras)
        self._versions.upsert(
            ids=[shard_name(self._name, c) for c in names],
            embeddings=np.ones((len(names), 1), dtype=np.float32),
            metadatas=[{"camera_id": c, "token": uuid.uuid4().hex} for c in names],
        )

    def _tokens(self, cameras: Sequence[str], *, give: bool = True) -> dict[str, str]:
        """The cameras' current tokens, in one read; cameras without one (shards written
        before tokens existed) are given one first (``give``)."""
        names = {shard_name(self._name, c): c for c in cameras}
        got = self._versions.get(ids=list(names), include=["metadatas"])
        out = {
            names[i]: str(meta["token"])
            for i, meta in zip(got["ids"], got["metadatas"], strict=True)
            if meta and "token" in meta
        }
        missing = [c for c in cameras if c not in out]
        if missing and give:
            self._bump(missing)
            return self._tokens(cameras, give=False)
        return out

    def count(self) -> int:
        return int(self._collection.count())

    def present(self, ids: Collection[str], batch: int = 1000) -> list[str]:
        """Which of ``ids`` are in the index (one read per ``batch`` ids)."""
        wanted, out = list(ids), []
        for i in range(0, len(wanted), batch):
            out.extend(self._collection.get(ids=wanted[i : i + batch], include=[])["ids"])
        return [str(x) for x in out]

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
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        want = k + (1 if exclude is not None else 0)
        cameras = scoped_cameras(flt)
        if cameras is None:
            found = self._query_in(self._collection, q, flt, want, cameras=True, full=True)
            return [h for h in found if h.id != exclude][:k]
        # The scope's shards: their nearest items (from memory with text and metadata, or
        # Chroma's ids and scores only, a third of the time of a query that brings documents
        # along), merged; then the documents of the k winners that came from Chroma, in one
        # read of the main collection.
        near, from_chroma = self._near(cameras, q, flt, want)
        near.sort(key=lambda h: -h.score)
        best = [h for h in near if h.id != exclude][:k]
        bare = {h.id for h in best} & from_chroma
        if not bare:
            return best
        got = self._collection.get(ids=sorted(bare), include=["documents", "metadatas"])
        rows = {
            i: (doc, meta)
            for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }
        # An item deleted between the two reads is left out.
        return [
            h
            if h.id not in bare
            else SearchHit(h.id, h.score, rows[h.id][0] or "", dict(rows[h.id][1] or {}))
            for h in best
            if h.id not in bare or h.id in rows
        ]

    def _near(
        self, cameras: Sequence[str], q: NDArray[np.float32], flt: SearchFilter, want: int
    ) -> tuple[list[SearchHit], set[str]]:
        """The ``want`` nearest items of each camera's shard that pass ``flt``, with their
        text and metadata when searched in memory; and the ids of those that came from
        Chroma (ids and scores only)."""
        tokens: dict[str, str] = {}
        if self._exact_shard_max and self._tokened:
            tokens = self._tokens(cameras)
        near: list[SearchHit] = []
        from_chroma: set[str] = set()
        for camera_id in cameras:
            hits: list[SearchHit] | None = None
            if self._exact_shard_max and (camera_id in tokens or not self._tokened):
                with self._lock:
                    mirror = self._mirror(camera_id, tokens.get(camera_id))
                    if mirror is not None:
                        pairs = mirror.top(
                            q,
                            want,
                            label=flt.label,
                            kind=flt.kind,
                            since=flt.since,
                            until=flt.until,
                        )
                        hits = [SearchHit(i, score, *mirror.item(i)) for i, score in pairs]
            if hits is None:
                hits = self._query_in(
                    self._shard(camera_id), q, flt, want, cameras=False, full=False
                )
                from_chroma.update(h.id for h in hits)
            near.extend(hits)
        return near, from_chroma

    def _mirror(self, camera_id: str, token: str | None) -> ShardMirror | None:
        """The camera's mirror, up to date (with ``token`` for a server's store); None when
        its shard is too big to mirror. Called with the lock held."""
        entry = self._mirrors.get(camera_id)
        if entry is not None and entry[0] == token:
            self._mirrors.move_to_end(camera_id)
            return entry[1]
        shard = self._shard(camera_id)
        mirror = entry[1] if entry is not None else None
        if mirror is not None:
            got = shard.get(
                where={"indexed_at": {"$gte": mirror.stamp - REFRESH_MARGIN_S}},
                include=["embeddings", "metadatas", "documents"],
            )
            mirror.upsert(got["ids"], got["embeddings"], got["metadatas"], got["documents"])
            if int(shard.count()) != len(mirror):
                mirror = None  # items left (a delete): read it whole
        if mirror is None:
            size = int(shard.count())
            if size <= min(self._exact_shard_max, self._exact_max):
                mirror = ShardMirror()
                for offset in range(0, size, _PAGE):
                    got = shard.get(
                        include=["embeddings", "metadatas", "documents"],
                        limit=_PAGE,
                        offset=offset,
                    )
                    mirror.upsert(got["ids"], got["embeddings"], got["metadatas"], got["documents"])
                if len(mirror) > self._exact_shard_max:
                    mirror = None  # grew while it was read
        self._mirrors[camera_id] = (token, mirror)
        self._mirrors.move_to_end(camera_id)
        self._evict()
        return mirror

    def _evict(self) -> None:
        """Lets the least recently used mirrors go while more than ``exact_max_items`` are
        held (the newest is kept, whatever its size)."""
        held = sum(len(m) for _, m in self._mirrors.values() if m is not None)
        while held > self._exact_max and len(self._mirrors) > 1:
            _, (_, mirror) = self._mirrors.popitem(last=False)
            held -= len(mirror) if mirror is not None else 0

    def _query_in(
        self,
        coll: Any,
        q: NDArray[np.float32],
        flt: SearchFilter,
        want: int,
        *,
        cameras: bool,
        full: bool,
    ) -> list[SearchHit]:
        """The ``want`` nearest items of ``coll`` that pass ``flt`` (its camera terms only when
        ``cameras``): the terms checked on an over-fetched list, Chroma's ``where`` when too
        few of it pass. ``full=False``: ids and scores only (text "", metadata as needed)."""
        include = _INCLUDE if full else ["distances"]
        where = where_filter(flt, cameras=cameras)
        if where is None:
            return _hits(coll.query(query_embeddings=q, n_results=want, include=include))
        size = int(coll.count())
        if size == 0:
            return []
        fetch_include = _INCLUDE if full else ["metadatas", "distances"]
        for factor in (1, OVERFETCH_WIDER):
            fetch = min(size, factor * max(OVERFETCH * want, MIN_FETCH))
            top = _hits(coll.query(query_embeddings=q, n_results=fetch, include=fetch_include))
            kept = [h for h in top if passes(h.metadata, flt, cameras=cameras)]
            if len(kept) >= want or fetch >= size:
                return kept[:want]
        return _hits(
            coll.query(query_embeddings=q, n_results=min(want, size), where=where, include=include)
        )


@dataclass
class _Mirrors:
    """Mirrored shards by camera: (the token they are up to date with, None for an embedded
    store; the mirror, or None: too big), least recently searched first."""

    by_camera: OrderedDict[str, tuple[str | None, ShardMirror | None]] = field(
        default_factory=OrderedDict
    )
    lock: threading.RLock = field(default_factory=threading.RLock)


_EMBEDDED: dict[tuple[str, str], _Mirrors] = {}
_EMBEDDED_LOCK = threading.Lock()


def _embedded_mirrors(path: Path, collection: str) -> _Mirrors:
    """The mirrors of an embedded store's collection, one set per process (as Chroma keeps
    one client per path), so that every index of that store sees every write."""
    key = (str(Path(path).resolve()), collection)
    with _EMBEDDED_LOCK:
        return _EMBEDDED.setdefault(key, _Mirrors())


def _by_camera(metas: Iterable[dict[str, Any] | None]) -> dict[str, list[int]]:
    """Row numbers by camera (items without a camera, like knowledge-base sections, have no
    shard)."""
    out: dict[str, list[int]] = {}
    for i, meta in enumerate(metas):
        camera_id = (meta or {}).get("camera_id")
        if isinstance(camera_id, str) and camera_id:
            out.setdefault(camera_id, []).append(i)
    return out


def _hits(result: dict[str, Any]) -> list[SearchHit]:
    """The hits of one query's result (documents and metadata when it included them)."""
    ids, dists = result["ids"][0], result["distances"][0]
    docs = (result.get("documents") or [None])[0] or [""] * len(ids)
    metas = (result.get("metadatas") or [None])[0] or [{}] * len(ids)
    return [
        SearchHit(i, 1.0 - float(dist), doc or "", dict(meta or {}))
        for i, dist, doc, meta in zip(ids, dists, docs, metas, strict=True)
    ]
