"""Box validation and annotator quality (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sentinel.train.annotations import (
    InvalidAnnotationError,
    LabeledBox,
    QueueCandidate,
    hamming64,
    validate_boxes,
)
from sentinel.train.quality import annotator_quality, match_gold

LABELS = ("person", "car")


def check(*boxes: LabeledBox) -> list[LabeledBox]:
    return validate_boxes(boxes, width=100, height=50, labels=LABELS)


def test_good_boxes_pass_without_detector_scores() -> None:
    out = check(LabeledBox("person", 0, 0, 100, 50, score=0.4), LabeledBox("car", 10, 10, 12, 12))
    assert out == [LabeledBox("person", 0, 0, 100, 50), LabeledBox("car", 10, 10, 12, 12)]
    assert check() == []


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        (LabeledBox("dog", 1, 1, 10, 10), "label 'dog' is not one the model knows"),
        (LabeledBox("person", -1, 1, 10, 10), "outside the 100x50 image"),
        (LabeledBox("person", 1, 1, 10, 51), "outside the 100x50 image"),
        (LabeledBox("person", 10, 1, 5, 10), "needs x1 < x2 and y1 < y2"),
        (LabeledBox("person", 1, 10, 5, 10), "needs x1 < x2 and y1 < y2"),
        (LabeledBox("person", 1, 1, 2.5, 10), "1.5x9 px is smaller than the minimum 2 px"),
    ],
)
def test_each_bad_box_is_named_with_its_reason(box: LabeledBox, reason: str) -> None:
    with pytest.raises(InvalidAnnotationError) as info:
        check(LabeledBox("person", 1, 1, 10, 10), box)
    [rejection] = info.value.rejections
    assert rejection.index == 1 and reason in rejection.reason
    assert str(info.value).startswith("box 1: ")


def test_all_bad_boxes_are_reported_at_once() -> None:
    with pytest.raises(InvalidAnnotationError) as info:
        check(
            LabeledBox("dog", 1, 1, 10, 10),
            LabeledBox("car", 1, 1, 10, 10),
            LabeledBox("car", 0, 0, 200, 10),
        )
    assert [r.index for r in info.value.rejections] == [0, 2]
    with pytest.raises(InvalidAnnotationError, match="at most 2 boxes"):
        validate_boxes(
            [LabeledBox("car", 1, 1, 9, 9)] * 3, width=10, height=10, labels=LABELS, max_boxes=2
        )


def test_non_finite_coordinates_never_make_a_box() -> None:
    with pytest.raises(ValueError, match="finite"):
        LabeledBox("person", float("nan"), 1, 2, 3)


def test_queue_candidate_checks_its_fields() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    ok: dict[str, Any] = {"camera_id": "c", "frame_ts": t, "frame_index": None, "width": 4,
                          "source": "video", "height": 4, "phash": 1, "score": 0.5,
                          "image_key": "a/b.jpg"}  # fmt: skip
    QueueCandidate(**ok)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"source": "web"}, "source must be one of"),
        ({"phash": -1}, "64-bit"),
        ({"phash": 2**64}, "64-bit"),
        ({"reasons": ("vibes",)}, "reasons must be among"),
        ({"image_jpeg": b"x"}, "exactly one of"),
        ({"image_key": None}, "exactly one of"),
        ({"frame_ts": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"width": 0}, "positive"),
    ]
    for change, message in changes:
        with pytest.raises(ValueError, match=message):
            QueueCandidate(**{**ok, **change})
    assert hamming64(0, 2**64 - 1) == 64 and hamming64(0b1011, 0b0001) == 2


P = LabeledBox("person", 0, 0, 10, 10)


@pytest.mark.parametrize(
    ("submitted", "reference", "f1", "matched"),
    [
        ([], [], 1.0, 0),
        ([P], [P], 1.0, 1),
        ([LabeledBox("person", 2, 0, 12, 10)], [P], 1.0, 1),  # IoU 8/12 = 0.67
        ([LabeledBox("person", 5, 0, 15, 10)], [P], 0.0, 0),  # IoU 5/15 = 0.33
        ([LabeledBox("car", 0, 0, 10, 10)], [P], 0.0, 0),  # wrong label
        ([P, P], [P], 2 / 3, 1),  # a duplicate box is a false positive
        ([], [P], 0.0, 0),
        ([P], [P, LabeledBox("car", 20, 20, 30, 30)], 2 / 3, 1),
    ],
)
def test_gold_matching(
    submitted: list[LabeledBox], reference: list[LabeledBox], f1: float, matched: int
) -> None:
    result = match_gold(submitted, reference)
    assert result.f1 == pytest.approx(f1) and result.matched == matched
    assert (result.submitted, result.reference) == (len(submitted), len(reference))


def test_quality_combines_review_and_gold_with_counts() -> None:
    q = annotator_quality("ann", submitted=5, accepted=3, returned=1, gold_f1s=[1.0, 0.5])
    assert (q.reviewed, q.review_agreement, q.gold_items, q.gold_f1) == (4, 0.75, 2, 0.75)
    assert q.score == pytest.approx(0.75)
    only_gold = annotator_quality("g", submitted=1, accepted=0, returned=0, gold_f1s=[0.4])
    assert only_gold.review_agreement is None and only_gold.score == pytest.approx(0.4)
    nothing = annotator_quality("n", submitted=2, accepted=0, returned=0, gold_f1s=[])
    assert nothing.score is None
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        annotator_quality("x", submitted=0, accepted=0, returned=0, gold_f1s=[1.5])
