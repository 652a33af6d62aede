"""The search indexer: drains the durable indexing queue into the vector index.

Events and incidents reach the index only through the database queue (written in the same
transaction as their close), never by a call from a camera actor, so a slow embedder never
holds video back and nothing is lost while the indexer is down: it catches up from the queue.
Texts are embedded by the Embedder deployment (batched with the search API's queries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from numpy.typing import NDArray

from sentinel.config import SearchSettings
from sentinel.search.documents import SearchDocument
from sentinel.search.index import IndexUnavailableError, SearchFilter, SearchHit, VectorIndex
from sentinel.search.kb import KB_COLLECTION
from sentinel.search.service import IndexReport, SearchService

logger = logging.getLogger(__name__)

INDEXER_NAME = "sentinel-search-indexer"
EmbedAsync = Callable[[list[str]], Awaitable[NDArray[np.float32]]]


class Indexer:
    """One indexing pass at a time: lease, build documents, embed, upsert, complete."""

    def __init__(self, service: SearchService, embed: EmbedAsync, settings: SearchSettings) -> None:
        self.service = service
        self.embed = embed
        self.settings = settings
        self.indexed = 0
        self.deleted = 0
        self.failed = 0
        self.last_error = ""
        self.last_pass_at: float | None = None

    async def run_once(self) -> bool:
        """One batch; returns whether there was work (the loop then goes on at once)."""
        leases = await asyncio.to_thread(
            self.service.queue.lease, self.settings.batch, self.settings.lease_s
        )
        if not leases:
            return False
        batch = await asyncio.to_thread(self.service.prepare, leases)
        vectors: NDArray[np.float32] | BaseException = np.zeros((0, 0), np.float32)
        if batch.items:
            try:
                vectors = await self.embed(batch.texts)
            except Exception as exc:
                logger.warning("search indexer: embedding failed: %s", exc)
                vectors = exc
        report: IndexReport = await asyncio.to_thread(self.service.commit, batch, vectors)
        self.indexed += report.upserted
        self.deleted += report.deleted
        self.failed += report.failed
        self.last_pass_at = time.time()
        if isinstance(vectors, BaseException):
            self.last_error = repr(vectors)[:500]
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "deleted": self.deleted,
            "failed": self.failed,
            "last_error": self.last_error,
            "last_pass_at": self.last_pass_at,
        }


@ray.remote(num_cpus=0, max_restarts=-1)
class IndexerActor:
    """Ray adapter: polls the queue and embeds through the Embedder deployment's handle."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        from ray import serve

        from sentinel.search.service import open_search
        from sentinel.store.db import make_engine
        from sentinel.store.s3 import make_object_store

        settings = SearchSettings(**runtime.get("search", {}))
        handle = serve.get_deployment_handle("Embedder", app_name=runtime["app_name"])

        async def embed(texts: list[str]) -> NDArray[np.float32]:
            result: NDArray[np.float32] = await handle.embed.remote(texts)
            return result

        def embed_sync(texts: list[str]) -> NDArray[np.float32]:
            result: NDArray[np.float32] = handle.embed.remote(texts).result()
            return result

        data_dir = Path(runtime["data_dir"])
        service = open_search(
            make_engine(runtime["db_url"]),
            settings,
            data_dir / "search",
            embed_sync,
            objects=make_object_store(runtime["objects"], data_dir),
        )
        self.indexer = Indexer(service, embed, settings)
        # The knowledge base's sections: a collection of the same store, owned here too.
        self.kb_index = VectorIndex(
            data_dir / "search", url=settings.chroma_url, collection=KB_COLLECTION
        )
        self.interval = settings.poll_interval_s
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self.indexer.run_once()
            except Exception as exc:
                logger.exception("search indexer pass failed")
                self.indexer.last_error = repr(exc)[:500]
                busy = False
            if not busy:
                await asyncio.sleep(self.interval)

    async def stats(self) -> dict[str, Any]:
        lag = await asyncio.to_thread(self.indexer.service.lag)
        count = await asyncio.to_thread(self.indexer.service.index.count)
        return {**self.indexer.stats(), **lag, "indexed_items": count}

    # The embedded indexes belong to this process (Chroma's persistent store is not shared
    # between processes): the API reaches them through these methods ("text" or "appearance").

    def _index(self, which: str) -> Any:
        if which == "kb":
            return self.kb_index
        service = self.indexer.service
        index = service.appearance if which == "appearance" else service.index
        if index is None:
            raise IndexUnavailableError(f"no {which} index")
        return index

    async def query(
        self,
        which: str,
        vector: NDArray[np.float32],
        flt: SearchFilter,
        k: int,
        exclude: str | None = None,
    ) -> list[SearchHit]:
        index = self._index(which)
        hits: list[SearchHit] = await asyncio.to_thread(
            index.query, vector, flt, k, exclude=exclude
        )
        return hits

    async def vector(self, which: str, item_id: str) -> NDArray[np.float32] | None:
        found: NDArray[np.float32] | None = await asyncio.to_thread(
            self._index(which).vector, item_id
        )
        return found

    async def count(self, which: str) -> int:
        return int(await asyncio.to_thread(self._index(which).count))

    async def get(self, which: str, item_id: str) -> SearchHit | None:
        hit: SearchHit | None = await asyncio.to_thread(self._index(which).get, item_id)
        return hit

    async def ids(self, which: str, batch: int = 5000) -> list[str]:
        found: list[str] = await asyncio.to_thread(self._index(which).ids, batch)
        return found

    async def present(self, which: str, ids: list[str]) -> list[str]:
        found: list[str] = await asyncio.to_thread(self._index(which).present, ids)
        return found

    async def upsert(
        self, which: str, docs: list[SearchDocument], vectors: NDArray[np.float32]
    ) -> None:
        await asyncio.to_thread(self._index(which).upsert, docs, vectors)

    async def delete(self, which: str, ids: list[str]) -> None:
        await asyncio.to_thread(self._index(which).delete, ids)


class ActorIndex:
    """The API's view of one of the indexer's indexes (``which``: "text", "appearance" or
    "kb", the knowledge base's sections):
    the methods of ``VectorIndex``, called on the indexer actor found by name."""

    def __init__(self, namespace: str, which: str = "text", timeout_s: float = 10.0) -> None:
        self.namespace = namespace
        self.which = which
        self.timeout_s = timeout_s

    def _actor(self) -> Any:
        try:
            return ray.get_actor(INDEXER_NAME, namespace=self.namespace)
        except ValueError as exc:
            raise IndexUnavailableError("the search indexer is not running") from exc

    def query(
        self, vector: NDArray[np.float32], flt: SearchFilter, k: int, *, exclude: str | None = None
    ) -> list[SearchHit]:
        hits: list[SearchHit] = ray.get(
            self._actor().query.remote(self.which, vector, flt, k, exclude), timeout=self.timeout_s
        )
        return hits

    def vector(self, item_id: str) -> NDArray[np.float32] | None:
        found: NDArray[np.float32] | None = ray.get(
            self._actor().vector.remote(self.which, item_id), timeout=self.timeout_s
        )
        return found

    def count(self) -> int:
        return int(ray.get(self._actor().count.remote(self.which), timeout=self.timeout_s))

    def get(self, item_id: str) -> SearchHit | None:
        hit: SearchHit | None = ray.get(
            self._actor().get.remote(self.which, item_id), timeout=self.timeout_s
        )
        return hit

    def ids(self, batch: int = 5000) -> list[str]:
        found: list[str] = ray.get(
            self._actor().ids.remote(self.which, batch), timeout=self.timeout_s
        )
        return found

    def present(self, ids: Collection[str]) -> list[str]:
        found: list[str] = ray.get(
            self._actor().present.remote(self.which, list(ids)), timeout=self.timeout_s
        )
        return found

    def upsert(self, docs: Sequence[SearchDocument], vectors: NDArray[np.float32]) -> None:
        ray.get(
            self._actor().upsert.remote(self.which, list(docs), vectors), timeout=self.timeout_s
        )

    def delete(self, ids: Collection[str]) -> None:
        ray.get(self._actor().delete.remote(self.which, list(ids)), timeout=self.timeout_s)
