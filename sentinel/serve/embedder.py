"""The text embedder deployment: texts from the indexer and the search API, batched by
``@serve.batch`` (one forward pass for every request that arrives within the wait)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from numpy.typing import NDArray
from ray import serve

from sentinel.models.embedder import MAX_TEXTS, TextEmbedder


@serve.deployment(name="Embedder", max_ongoing_requests=64)
class Embedder:
    """Serves all-MiniLM-L6-v2 (:class:`sentinel.models.embedder.TextEmbedder`)."""

    def __init__(self, threads: int | None = None, max_batch_size: int = 32) -> None:
        self.model = TextEmbedder(threads=threads)
        self.embed_batch.set_max_batch_size(max_batch_size)  # type: ignore[attr-defined]

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def embed_batch(self, requests: list[list[str]]) -> list[NDArray[np.float32]]:
        texts = [text for batch in requests for text in batch]
        vectors = await asyncio.to_thread(self.model.embed, texts)
        out: list[NDArray[np.float32]] = []
        start = 0
        for batch in requests:
            out.append(vectors[start : start + len(batch)])
            start += len(batch)
        return out

    async def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """``(len(texts), 384)`` unit vectors; ValueError for a bad input."""
        if not texts or len(texts) > MAX_TEXTS or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a list of 1 to {MAX_TEXTS} strings")
        result: NDArray[np.float32] = await self.embed_batch(list(texts))
        return result

    def ready(self) -> bool:
        return True


def build_embedder(
    threads: int | None = None, num_cpus: float = 0.0, max_batch_size: int = 32
) -> Any:
    """The bound embedder deployment."""
    return Embedder.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": num_cpus}
    ).bind(threads, max_batch_size)
