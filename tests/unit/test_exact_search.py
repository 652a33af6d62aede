"""The in-memory exact search of one camera's items (:class:`ShardMirror`), against a plain
brute force over the same vectors, filters included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.search.exact import ShardMirror

N, DIM = 300, 16
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
LABELS = ("person", "car", "truck")


def _world(seed: int = 7) -> tuple[list[str], NDArray[np.float32], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 3, (N, 1))
    vectors = (rng.standard_normal((N, DIM)) * scale).astype(np.float32)
    metas: list[dict[str, Any]] = [
        {
            "label": LABELS[i % 3],
            "kind": "incident" if i % 7 == 0 else "event",
            "start": int((T0 + timedelta(minutes=i)).timestamp()),
            "indexed_at": 1000.0 + i,
        }
        for i in range(N)
    ]
    metas[5].pop("start")  # an item without a start never passes a time bound
    return [f"i{i}" for i in range(N)], vectors, metas


def _brute(
    ids: list[str],
    vectors: NDArray[np.float32],
    metas: list[dict[str, Any]],
    q: NDArray[np.float32],
    k: int,
    **bounds: Any,
) -> list[str]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (q / np.linalg.norm(q))
    keep = []
    for i, meta in enumerate(metas):
        start = meta.get("start")
        if bounds.get("label") and meta["label"] != bounds["label"]:
            continue
        if bounds.get("kind") and meta["kind"] != bounds["kind"]:
            continue
        if bounds.get("since") and (start is None or start < bounds["since"].timestamp()):
            continue
        if bounds.get("until") and (start is None or start > bounds["until"].timestamp()):
            continue
        keep.append(i)
    keep.sort(key=lambda i: -scores[i])
    return [ids[i] for i in keep[:k]]


CASES: list[tuple[str, dict[str, Any], int]] = [
    ("no bounds", {}, 10),
    ("label", {"label": "car"}, 10),
    ("kind", {"kind": "incident"}, 5),
    ("since", {"since": T0 + timedelta(minutes=200)}, 10),
    ("until", {"until": T0 + timedelta(minutes=30)}, 10),
    (
        "all bounds",
        {"label": "person", "kind": "event", "since": T0, "until": T0 + timedelta(hours=2)},
        8,
    ),
    ("fewer pass than k", {"kind": "incident", "label": "truck"}, 50),
    ("nothing passes", {"since": T0 + timedelta(days=30)}, 10),
    ("a label no item has", {"label": "bicycle"}, 10),
    ("k above the size", {}, N + 50),
]


@pytest.mark.parametrize(("bounds", "k"), [(b, k) for _, b, k in CASES], ids=[c[0] for c in CASES])
def test_top_is_the_exact_top_k_of_what_passes(bounds: dict[str, Any], k: int) -> None:
    ids, vectors, metas = _world()
    mirror = ShardMirror()
    mirror.upsert(ids, vectors, metas)
    rng = np.random.default_rng(11)
    for _ in range(5):
        q = rng.standard_normal(DIM).astype(np.float32)
        got = mirror.top(q, k, **bounds)
        assert [i for i, _ in got] == _brute(ids, vectors, metas, q, k, **bounds)
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        assert all(-1.0001 <= s <= 1.0001 for s in scores)


def test_upsert_replaces_by_id_and_remove_forgets() -> None:
    ids, vectors, metas = _world()
    mirror = ShardMirror()
    mirror.upsert(ids[:200], vectors[:200], metas[:200], [f"old {i}" for i in ids[:200]])
    mirror.upsert(ids[150:], vectors[150:], metas[150:], [f"new {i}" for i in ids[150:]])
    assert len(mirror) == N and mirror.stamp == 1000.0 + N - 1
    assert mirror.item("i10") == ("old i10", metas[10])
    assert mirror.item("i160") == ("new i160", metas[160])  # replaced: 50 of them
    target = vectors[42]
    assert mirror.top(target, 1)[0][0] == "i42"
    # i42 moves to where i7 is: both now answer a query for i7's vector.
    mirror.upsert(["i42"], vectors[7:8], [dict(metas[42], label="truck")])
    assert {i for i, _ in mirror.top(vectors[7], 2)} == {"i7", "i42"}
    assert "i42" in [i for i, _ in mirror.top(vectors[7], 2, label="truck")]
    mirror.remove(["i7", "i42", "not-there"])
    assert len(mirror) == N - 2 and "i7" not in mirror and "i42" not in mirror
    assert mirror.item("i299") == ("new i299", metas[299])  # rows moved, items kept
    with pytest.raises(KeyError):
        mirror.item("i7")
    rest = [i for i in ids if i not in {"i7", "i42"}]
    keep = [int(i[1:]) for i in rest]
    q = vectors[7]
    assert [i for i, _ in mirror.top(q, 10)] == _brute(
        rest, vectors[keep], [metas[j] for j in keep], q, 10
    )


def test_the_last_of_a_repeated_id_wins_and_zero_vectors_score_zero() -> None:
    mirror = ShardMirror()
    a, b = np.eye(4, dtype=np.float32)[:2]
    mirror.upsert(["x", "x", "z"], np.stack([a, b, np.zeros(4, np.float32)]), [{}, {}, {}])
    assert len(mirror) == 2
    top = mirror.top(b, 2)
    assert [i for i, _ in top] == ["x", "z"]
    assert top[0][1] == pytest.approx(1.0) and top[1][1] == 0.0


def test_dimensions_must_agree() -> None:
    mirror = ShardMirror()
    assert mirror.top(np.ones(3, np.float32), 5) == []  # empty: nothing to compare
    mirror.upsert(["a"], np.ones((1, 3), np.float32), [{}])
    with pytest.raises(ValueError, match="4 dimensions in a 3-d shard"):
        mirror.upsert(["b"], np.ones((1, 4), np.float32), [{}])
    with pytest.raises(ValueError, match="a 5-d query in a 3-d shard"):
        mirror.top(np.ones(5, np.float32), 1)
    with pytest.raises(ValueError, match="2 ids but 1 metadata"):
        mirror.upsert(["b", "c"], np.ones((2, 3), np.float32), [{}])
