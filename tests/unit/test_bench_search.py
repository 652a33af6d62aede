"""The search benchmark measures something real: every query has relevant events in the
seeded history, the keyword baseline ranks by term weight, and the metrics count right."""

from __future__ import annotations

import numpy as np

from benchmarks import search as bench


def test_every_query_has_relevant_events_and_some_miss_them() -> None:
    history = bench.make_history()
    facts = [f for f, _ in history]
    assert len(bench.QUERIES) >= 40
    for query, pred in bench.QUERIES:
        relevant = [f for f in facts if pred(f)]
        assert relevant, query
        assert len(relevant) < len(facts), query  # a query that matches all measures nothing
    texts = [d.text for _, d in history]
    assert len(set(texts)) > 0.95 * len(texts)


def test_bm25_prefers_rare_matching_terms() -> None:
    bm25 = bench.BM25(["red car at the gate", "blue car at the gate", "person at the dock"])
    assert bm25.top("red car", 3)[0] == 0
    assert bm25.top("dock", 3) == [2]
    assert bm25.top("nothing matches", 3) == []


def test_recall_and_mrr() -> None:
    assert bench.recall_mrr(["a", "b", "c"], {"b", "x"}, k=2) == (0.5, 0.5)
    assert bench.recall_mrr(["a"], {"z"}, k=10) == (0.0, 0.0)
    assert bench.recall_mrr(["z", "y"], {"z", "y"}, k=10) == (1.0, 1.0)


def test_numpy_topk_respects_the_mask() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((200, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    q = matrix[5]
    assert bench._numpy_topk(matrix, q, 3, None)[0] == 5
    mask = np.zeros(200, dtype=bool)
    mask[100:] = True
    top = bench._numpy_topk(matrix, q, 3, mask)
    assert all(i >= 100 for i in top)
    scores = matrix[top] @ q
    assert list(scores) == sorted(scores, reverse=True)
