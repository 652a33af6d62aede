"""mAP@0.5 and per-class precision/recall on hand-made cases; the gate on both splits."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.train.evaluate import ClassReport, EvalReport, average_precision, evaluate
from sentinel.train.gate import gate

A = (0.0, 0.0, 10.0, 10.0)
B = (20.0, 20.0, 30.0, 30.0)
A_SHIFTED = (1.0, 0.0, 11.0, 10.0)  # IoU with A = 90/110 = 0.82
A_FAR = (6.0, 0.0, 16.0, 10.0)  # IoU with A = 40/160 = 0.25


def test_perfect_predictions_score_one() -> None:
    report = evaluate(
        [[("person", 0.9, A), ("person", 0.8, B)]], [[("person", A), ("person", B)]], ["person"]
    )
    assert report.map50 == pytest.approx(1.0)
    c = report.classes["person"]
    assert (c.precision, c.recall, c.true_positives, c.false_positives) == (1.0, 1.0, 2, 0)


def test_a_false_positive_ranked_first_halves_precision_at_the_top() -> None:
    # ranked: FP (0.9), TP (0.8) -> P/R points (0, 0), (0.5, 1.0): AP = 0.5 with one truth
    report = evaluate(
        [[("person", 0.9, B), ("person", 0.8, A_SHIFTED)]], [[("person", A)]], ["person"]
    )
    assert report.map50 == pytest.approx(0.5)
    assert report.classes["person"].precision == pytest.approx(0.5)
    assert report.errors() == 1


def test_misses_and_low_iou() -> None:
    report = evaluate(
        [[("person", 0.9, A_FAR)], []], [[("person", A)], [("person", B)]], ["person"]
    )
    c = report.classes["person"]
    assert report.map50 == 0.0
    assert (c.true_positives, c.false_positives, c.false_negatives) == (0, 1, 2)


def test_one_truth_matches_one_prediction_only() -> None:
    report = evaluate(
        [[("person", 0.9, A), ("person", 0.8, A_SHIFTED)]], [[("person", A)]], ["person"]
    )
    c = report.classes["person"]
    assert (c.true_positives, c.false_positives) == (1, 1)
    assert report.map50 == pytest.approx(1.0)  # the duplicate ranks below the only truth


def test_precision_and_recall_are_counted_at_conf() -> None:
    preds = [[("person", 0.9, A), ("person", 0.1, B)]]
    report = evaluate(preds, [[("person", A), ("person", B)]], ["person"], conf=0.25)
    c = report.classes["person"]
    assert (c.recall, c.precision) == (0.5, 1.0)
    assert report.map50 == pytest.approx(1.0)


def test_map_averages_labels_with_truths_and_ignores_unknown_labels() -> None:
    preds = [[("person", 0.9, A), ("car", 0.9, B), ("dog", 0.9, A)]]
    truths = [[("person", A), ("car", A)]]
    report = evaluate(preds, truths, ["person", "car", "bike"])
    assert report.classes["person"].ap50 == pytest.approx(1.0)
    assert report.classes["car"].ap50 == 0.0
    assert report.classes["bike"].truths == 0
    assert report.map50 == pytest.approx(0.5)


def test_average_precision_all_point() -> None:
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_evaluate_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="predictions cover 1 images but truths 2"):
        evaluate([[]], [[], []], ["person"])


def report(map50: float, images: int = 10) -> EvalReport:
    return EvalReport(map50=map50, images=images, classes={})


def test_gate_passes_only_when_both_splits_beat_the_margin() -> None:
    champion = {"validation": report(0.80), "regression": report(0.70)}
    ok = gate({"validation": report(0.83), "regression": report(0.72)}, champion, margin=0.01)
    assert ok.passed and ok.as_tags()["gate.passed"] == "true"
    worse = gate({"validation": report(0.90), "regression": report(0.705)}, champion, margin=0.01)
    assert not worse.passed
    assert "regression: challenger mAP@0.5 0.7050 does not beat champion 0.7000" in worse.reason
    assert worse.as_tags()["gate.validation.passed"] == "true"
    assert worse.as_tags()["gate.regression.passed"] == "false"


def test_gate_refuses_a_worse_model() -> None:
    champion = {"validation": report(0.80), "regression": report(0.70)}
    verdict = gate({"validation": report(0.60), "regression": report(0.50)}, champion, margin=0.0)
    assert not verdict.passed
    assert "delta -0.2000" in verdict.reason


def test_gate_refuses_more_errors_at_the_serving_threshold() -> None:
    def with_errors(map50: float, fp: int, fn: int) -> EvalReport:
        c = ClassReport(map50, 0.5, 0.5, 10 - fn, fp, fn, 10)
        return EvalReport(map50=map50, images=5, classes={"person": c})

    champion = {"validation": with_errors(0.8, 2, 1), "regression": with_errors(0.8, 2, 1)}
    noisy = {"validation": with_errors(0.9, 30, 0), "regression": with_errors(0.9, 1, 1)}
    verdict = gate(noisy, champion, margin=0.01)
    assert not verdict.passed
    assert "makes more errors (false positives + misses: 30 against 3)" in verdict.reason
    assert verdict.as_tags()["gate.regression.passed"] == "true"


def test_gate_fails_a_missing_or_empty_split() -> None:
    champion = {"validation": report(0.5)}
    verdict = gate({"validation": report(0.9)}, champion, margin=0.0)
    assert not verdict.passed
    assert "regression: no evaluation of the challenger" in verdict.reason
    empty = gate(
        {"validation": report(0.9), "regression": report(0.9, images=0)},
        {"validation": report(0.1), "regression": report(0.1, images=0)},
        margin=0.0,
    )
    assert not empty.passed and "regression: the split is empty" in empty.reason


def test_gate_rejects_a_negative_margin() -> None:
    with pytest.raises(ValueError, match="margin must be >= 0"):
        gate({}, {}, margin=-0.1)
