"""Annotator quality: agreement with reviewers and with hidden gold items (pure).

- Review agreement: of an annotator's reviewed submissions, the share reviewers accepted
  (self-reviews do not count).
- Gold agreement: on a gold item the submitted boxes are matched to the hidden reference boxes
  (same label, IoU >= 0.5, greedy by IoU); the item's F1 is ``2 * matched / (submitted +
  reference)`` (1.0 when both are empty). The gold agreement is the mean F1 over gold items.
- The quality score is the mean of the parts that have data (None while neither has any); the
  counts behind every part are reported with it, so a score from 2 reviews is not mistaken for
  one from 200.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sentinel.domain.annotation import LabeledBox, iou

__all__ = ["IOU_MATCH", "AnnotatorQuality", "GoldMatch", "annotator_quality", "match_gold"]

IOU_MATCH = 0.5


@dataclass(frozen=True)
class GoldMatch:
    """How a submission on a gold item agrees with its reference boxes."""

    matched: int
    submitted: int
    reference: int

    @property
    def precision(self) -> float:
        return self.matched / self.submitted if self.submitted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else 1.0

    @property
    def f1(self) -> float:
        total = self.submitted + self.reference
        return 2 * self.matched / total if total else 1.0


def match_gold(
    submitted: Sequence[LabeledBox],
    reference: Sequence[LabeledBox],
    iou_threshold: float = IOU_MATCH,
) -> GoldMatch:
    """Greedy one-to-one matching, best IoU first, between boxes of the same label."""
    pairs = sorted(
        (
            (overlap, i, j)
            for i, s in enumerate(submitted)
            for j, r in enumerate(reference)
            if s.label == r.label and (overlap := iou(s, r)) >= iou_threshold
        ),
        reverse=True,
    )
    used_s: set[int] = set()
    used_r: set[int] = set()
    for _, i, j in pairs:
        if i not in used_s and j not in used_r:
            used_s.add(i)
            used_r.add(j)
    return GoldMatch(len(used_s), len(submitted), len(reference))


@dataclass(frozen=True)
class AnnotatorQuality:
    """An annotator's quality score and the counts behind it."""

    annotator: str
    submitted: int
    reviewed: int
    accepted: int
    returned: int
    gold_items: int
    review_agreement: float | None
    gold_f1: float | None
    score: float | None


def annotator_quality(
    annotator: str,
    *,
    submitted: int,
    accepted: int,
    returned: int,
    gold_f1s: Sequence[float],
) -> AnnotatorQuality:
    """Combine review decisions and gold F1s into one score (see the module docstring).

    Raises:
        ValueError: a negative count or an F1 outside 0..1.
    """
    if min(submitted, accepted, returned) < 0:
        raise ValueError("counts must be >= 0")
    if any(not 0.0 <= f <= 1.0 for f in gold_f1s):
        raise ValueError(f"gold F1s must be within 0..1, got {list(gold_f1s)}")
    reviewed = accepted + returned
    review = accepted / reviewed if reviewed else None
    gold = sum(gold_f1s) / len(gold_f1s) if gold_f1s else None
    parts = [p for p in (review, gold) if p is not None]
    return AnnotatorQuality(
        annotator=annotator,
        submitted=submitted,
        reviewed=reviewed,
        accepted=accepted,
        returned=returned,
        gold_items=len(gold_f1s),
        review_agreement=review,
        gold_f1=gold,
        score=sum(parts) / len(parts) if parts else None,
    )
