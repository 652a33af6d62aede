"""The vector index's camera shards against brute force (a real embedded Chroma, no Ray, no
database): every filter gives the exact top-k of the items that pass it, with the shards
searched in memory and in Chroma alike, a limited scope is searched in its cameras' shards,
writes by another process are seen by the next query, deletes leave the shards, and an index
written before shards existed is sharded when opened."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
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
from tests.integration.conftest import wait_for
from tests.utils.media import free_port

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


@pytest.mark.parametrize("exact", [True, False], ids=["in-memory", "chroma"])
@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: repr(f)[:90])
def test_every_filter_gives_the_exact_top_k_of_what_passes(
    world: tuple[VectorIndex, list[SearchDocument], NDArray[np.float32], Path],
    flt: SearchFilter,
    exact: bool,
) -> None:
    index, docs, matrix, path = world
    if not exact:  # the same store, every shard searched by Chroma's HNSW
        index = VectorIndex(path, exact_shard_max_items=0)
    rng = np.random.default_rng(11)
    for _ in range(5):
        q = rng.standard_normal(DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        got = index.query(q, flt, K)
        want = _exact(docs, matrix, q, flt, K)
        assert [h.id for h in got] == want
        assert all(passes(h.metadata, flt) for h in got)
        assert [h.text for h in got] == [f"item {h.id.split('-')[1]}" for h in got]
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


WRITER = """
import sys
from datetime import UTC, datetime

import numpy as np

from sentinel.search.documents import SearchDocument
from sentinel.search.index import VectorIndex

url, camera, doomed = sys.argv[1], sys.argv[2], sys.argv[3]
index = VectorIndex(url=url)
vector = np.asarray([float(x) for x in sys.argv[4].split(",")], dtype=np.float32)
doc = SearchDocument(
    id="fresh", kind="event", text="fresh", camera_id=camera, label="person",
    started_at=datetime(2026, 5, 4, 9, 0, tzinfo=UTC),
)
index.upsert([doc], vector.reshape(1, -1))
index.delete([doomed])
"""


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A Chroma server (``chroma run``, the setting for several nodes) on a free port."""
    port = free_port()
    binary = Path(sys.executable).with_name("chroma")
    store = tmp_path / "chroma"
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(store), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # it died: fail below, not after the timeout

        wait_for(up, timeout=60, what="the Chroma server")
        assert proc.poll() is None, f"chroma run exited with {proc.returncode}"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _write_elsewhere(url: str, camera: str, doomed: str, vector: NDArray[np.float32]) -> None:
    """Upserts an item and deletes another from a separate Python process (another node's)."""
    root = Path(__file__).resolve().parents[2]
    csv = ",".join(str(float(x)) for x in vector)
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(
        [*(sys.executable, "-c", textwrap.dedent(WRITER)), url, camera, doomed, csv],
        check=True,
        env=env,
        timeout=120,
    )


def test_writes_of_another_process_are_seen_by_the_next_scoped_query(chroma_server: str) -> None:
    rng = np.random.default_rng(8)
    docs, matrix = _docs(rng)
    docs, matrix = docs[:200], matrix[:200]
    index = VectorIndex(url=chroma_server)
    index.upsert(docs, matrix)
    flt = SearchFilter(cameras=SCOPE_SMALL)
    mine = [i for i, d in enumerate(docs) if d.camera_id in SCOPE_SMALL]
    doomed, camera = docs[mine[0]].id, docs[mine[0]].camera_id
    q = matrix[mine[1]]
    # The scope's shards are mirrored by this query, and the answer is exact, documents and
    # metadata included.
    hits = index.query(q, flt, K)
    assert [h.id for h in hits] == _exact(docs, matrix, q, flt, K)
    by_id = {d.id: d for d in docs}
    assert [h.text for h in hits] == [by_id[h.id].text for h in hits]
    assert all(h.metadata["camera_id"] == by_id[h.id].camera_id for h in hits)
    assert set(index._mirrors) == SCOPE_SMALL
    # Another process adds an item right on the query and deletes one of the scope's items.
    _write_elsewhere(chroma_server, camera, doomed, q)
    got = [h.id for h in index.query(q, flt, K)]
    rest = [i for i, d in enumerate(docs) if d.id != doomed]
    assert got[0] == "fresh" and doomed not in got
    assert got[1:] == _exact([docs[i] for i in rest], matrix[rest], q, flt, K - 1)
    assert doomed not in [h.id for h in index.query(matrix[mine[0]], flt, len(docs))]


def test_a_second_index_on_the_same_store_sees_the_first_ones_writes(tmp_path: Path) -> None:
    """Two indexes on one embedded store (as the CLI beside a stopped platform): each keeps
    its own mirrors, and the tokens keep the reader's up to date with the writer's writes."""
    rng = np.random.default_rng(10)
    docs, matrix = _docs(rng)
    writer, reader = VectorIndex(tmp_path), VectorIndex(tmp_path)
    writer.upsert(docs[:300], matrix[:300])
    flt = SearchFilter(cameras=SCOPE_SMALL, label="person")
    q = matrix[400]
    assert [h.id for h in reader.query(q, flt, K)] == _exact(docs[:300], matrix[:300], q, flt, K)
    writer.upsert(docs[300:], matrix[300:])
    doomed = next(h.id for h in reader.query(q, flt, K))
    writer.delete([doomed])
    rest = [i for i, d in enumerate(docs) if d.id != doomed]
    want = _exact([docs[i] for i in rest], matrix[rest], q, flt, K)
    assert [h.id for h in reader.query(q, flt, K)] == want


def test_big_cameras_go_to_chroma_and_mirrors_stay_within_their_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    docs, matrix = _docs(rng)
    VectorIndex(tmp_path).upsert(docs, matrix)
    sizes = {c: sum(d.camera_id == c for d in docs) for c in SCOPE_SMALL}
    small = min(sizes, key=lambda c: sizes[c])
    # Only the smallest of the three cameras fits; the others are searched by Chroma.
    index = VectorIndex(tmp_path, exact_shard_max_items=sizes[small], exact_max_items=10_000)
    flt = SearchFilter(cameras=SCOPE_SMALL)
    q = matrix[0]
    assert [h.id for h in index.query(q, flt, K)] == _exact(docs, matrix, q, flt, K)
    held = {c: m for c, (_, m) in index._mirrors.items() if m is not None}
    assert set(held) == {small} and len(held[small]) == sizes[small]
    # A budget of one camera's items: the least recently searched mirrors are let go (a
    # store of its own: an embedded store's mirrors are shared by its indexes in a process).
    VectorIndex(tmp_path / "tight").upsert(docs, matrix)
    tight = VectorIndex(tmp_path / "tight", exact_max_items=max(sizes.values()))
    for camera_id in sorted(SCOPE_SMALL):
        one = SearchFilter(camera_id=camera_id)
        assert [h.id for h in tight.query(q, one, K)] == _exact(docs, matrix, q, one, K)
    assert list(tight._mirrors) == [sorted(SCOPE_SMALL)[-1]]
