"""The vector index's camera shards against brute force (a real embedded Chroma, no Ray, no
database): every filter gives the exact top-k of the items that pass it, a limited scope is
searched in its cameras' shards, deletes leave the shards, and an index written before shards
existed is sharded when opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.search.documents import SearchDocument
from sentinel.search.index import (
    MAX_SHARDS_PER_QUERY,
    SearchFilter,
    VectorIndex,
    passes,
    scoped_cameras,
    shard_name,
)

N, DIM, CAMERAS, K = 600, 32, 20, 10
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def _docs(rng: np.random.Generator) -> tuple[list[SearchDocument], NDArray[np.float32]]:
    matrix = rng.standard_normal((N, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    docs = [
        SearchDocument(
            id=f"item-{i}",
            kind="event" if i % 5 else "incident",
            text=f"item {i}",
            camera_id=f"cam{int(rng.integers(0, CAMERAS))}",
            label=("person", "car", "truck")[int(rng.integers(0, 3))],
            started_at=T0 + timedelta(minutes=int(rng.integers(0, 600))),
        )
        for i in range(N)
    ]
    return docs, matrix


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[VectorIndex, list[SearchDocument], NDArray[np.float32], Path]:
    rng = np.random.default_rng(3)
    docs, matrix = _docs(rng)
    path = tmp_path_factory.mktemp("vector-index")
    index = VectorIndex(path)
    index.upsert(docs[:300], matrix[:300])
    index.upsert(docs[300:], matrix[300:])
    return index, docs, matrix, path


def _exact(
    docs: list[SearchDocument],
    matrix: NDArray[np.float32],
    q: NDArray[np.float32],
    flt: SearchFilter,
    k: int,
    exclude: str | None = None,
) -> list[str]:
    rows = [i for i, d in enumerate(docs) if passes(d.metadata, flt) and d.id != exclude]
    scores = matrix[rows] @ q
    return [docs[rows[j]].id for j in np.argsort(-scores)[:k]]


SCOPE_SMALL = frozenset({"cam1", "cam2", "cam3"})
SCOPE_WIDE = frozenset(f"cam{i}" for i in range(MAX_SHARDS_PER_QUERY + 3))

FILTERS = [
    SearchFilter(),
    SearchFilter(camera_id="cam4"),
    SearchFilter(cameras=SCOPE_SMALL),
    SearchFilter(cameras=SCOPE_WIDE),
    SearchFilter(label="truck"),
    SearchFilter(kind="incident"),
    SearchFilter(since=T0 + timedelta(hours=9), until=T0 + timedelta(hours=9, minutes=20)),
    SearchFilter(cameras=SCOPE_SMALL, label="car", kind="event"),
    SearchFilter(cameras=SCOPE_WIDE, label="person", since=T0 + timedelta(hours=5)),
    SearchFilter(cameras=SCOPE_SMALL, camera_id="cam2", label="truck"),
]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: repr(f)[:90])
def test_every_filter_gives_the_exact_top_k_of_what_passes(
    world: tuple[VectorIndex, list[SearchDocument], NDArray[np.float32], Path],
    flt: SearchFilter,
) -> None:
    index, docs, matrix, _ = world
    rng = np.random.default_rng(11)
    for _ in range(5):
        q = rng.standard_normal(DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        got = index.query(q, flt, K)
        want = _exact(docs, matrix, q, flt, K)
        assert [h.id for h in got] == want
        assert all(passes(h.metadata, flt) for h in got)
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)


def test_a_scope_is_searched_in_its_cameras_shards_and_still_gets_k(
    world: tuple[VectorIndex, list[SearchDocument], NDArray[np.float32], Path],
) -> None:
    index, docs, matrix, _ = world
    assert scoped_cameras(SearchFilter(cameras=SCOPE_SMALL)) == sorted(SCOPE_SMALL)
    assert scoped_cameras(SearchFilter(cameras=SCOPE_WIDE)) is None
    assert scoped_cameras(SearchFilter(camera_id="cam9", cameras=SCOPE_WIDE)) == ["cam9"]
    # A query right on top of another camera's items: the scope still gets k of its own.
    outsider = next(i for i, d in enumerate(docs) if d.camera_id not in SCOPE_SMALL)
    got = index.query(matrix[outsider], SearchFilter(cameras=SCOPE_SMALL), K)
    assert len(got) == K and {h.metadata["camera_id"] for h in got} <= SCOPE_SMALL
    # Excluding the example itself (search by example).
    mine = next(i for i, d in enumerate(docs) if d.camera_id in SCOPE_SMALL)
    flt = SearchFilter(cameras=SCOPE_SMALL)
    got = index.query(matrix[mine], flt, K, exclude=docs[mine].id)
    assert [h.id for h in got] == _exact(docs, matrix, matrix[mine], flt, K, docs[mine].id)
    assert SearchFilter(cameras=frozenset()).matches_nothing()
    assert index.query(matrix[0], SearchFilter(cameras=frozenset()), K) == []


def test_deletes_leave_the_shards_and_old_indexes_are_sharded_when_opened(
    tmp_path: Path,
) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    rng = np.random.default_rng(5)
    docs, matrix = _docs(rng)
    docs, matrix = docs[:120], matrix[:120]
    # An index as written before shards: one collection, no shards, no marker.
    client = chromadb.PersistentClient(
        path=str(tmp_path), settings=ChromaSettings(anonymized_telemetry=False)
    )
    old = client.get_or_create_collection(
        "sentinel_search", embedding_function=None, metadata={"hnsw:space": "cosine"}
    )
    old.add(
        ids=[d.id for d in docs],
        embeddings=matrix,
        documents=[d.text for d in docs],
        metadatas=[dict(d.metadata) for d in docs],
    )
    del old, client
    index = VectorIndex(tmp_path)
    cam = docs[0].camera_id
    shard_ids = set(index._client.get_collection(shard_name("sentinel_search", cam)).get()["ids"])
    assert shard_ids == {d.id for d in docs if d.camera_id == cam}
    flt = SearchFilter(camera_id=cam)
    assert [h.id for h in index.query(matrix[0], flt, 5)] == _exact(docs, matrix, matrix[0], flt, 5)
    index.delete([docs[0].id, "not-there"])
    assert docs[0].id not in {h.id for h in index.query(matrix[0], flt, 50)}
    assert docs[0].id not in set(
        index._client.get_collection(shard_name("sentinel_search", cam)).get()["ids"]
    )
    assert index.count() == len(docs) - 1
    # Reopening does not copy again (the marker), and upserts keep both copies in step.
    again = VectorIndex(tmp_path)
    again.upsert([docs[0]], matrix[:1])
    assert [h.id for h in again.query(matrix[0], flt, 1)] == [docs[0].id]
    assert again.count() == len(docs)
