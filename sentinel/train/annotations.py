"""Checking an annotator's boxes before they are stored (pure).

A box is accepted when it lies inside the image, has ``x1 < x2`` and ``y1 < y2``, is at least
``MIN_BOX_PX`` wide and high, and its label is one the model knows (the detector's labels). Every
rejected box is reported with its index and the reason, all at once, so the annotator can fix
them in one go.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sentinel.domain.annotation import (
    NEAR_DUPLICATE_BITS,
    QUEUE_REASONS,
    QUEUE_SOURCES,
    LabeledBox,
    QueueCandidate,
    hamming64,
    iou,
)

__all__ = [
    "MAX_BOXES",
    "MIN_BOX_PX",
    "NEAR_DUPLICATE_BITS",
    "QUEUE_REASONS",
    "QUEUE_SOURCES",
    "BoxRejection",
    "InvalidAnnotationError",
    "LabeledBox",
    "QueueCandidate",
    "hamming64",
    "iou",
    "validate_boxes",
]

MIN_BOX_PX = 2.0
MAX_BOXES = 500


@dataclass(frozen=True)
class BoxRejection:
    """Why one box was refused: ``index`` is its position in the submitted list."""

    index: int
    reason: str

    def __str__(self) -> str:
        return f"box {self.index}: {self.reason}"


class InvalidAnnotationError(ValueError):
    """Some boxes were refused; ``rejections`` says which and why."""

    def __init__(self, rejections: Sequence[BoxRejection]) -> None:
        self.rejections = list(rejections)
        super().__init__("; ".join(str(r) for r in self.rejections))


def _box_reason(
    box: LabeledBox, width: int, height: int, labels: Collection[str], min_size: float
) -> str | None:
    coords = (box.x1, box.y1, box.x2, box.y2)
    if not all(math.isfinite(v) for v in coords):
        return f"coordinates must be finite numbers, got {list(coords)}"
    if box.label not in labels:
        return f"label {box.label!r} is not one the model knows"
    if not (box.x1 < box.x2 and box.y1 < box.y2):
        return f"needs x1 < x2 and y1 < y2, got ({box.x1}, {box.y1}, {box.x2}, {box.y2})"
    if box.x1 < 0 or box.y1 < 0 or box.x2 > width or box.y2 > height:
        return f"({box.x1}, {box.y1}, {box.x2}, {box.y2}) is outside the {width}x{height} image"
    if box.width < min_size or box.height < min_size:
        return f"{box.width:g}x{box.height:g} px is smaller than the minimum {min_size:g} px"
    return None


def validate_boxes(
    boxes: Sequence[LabeledBox],
    *,
    width: int,
    height: int,
    labels: Collection[str],
    min_size: float = MIN_BOX_PX,
    max_boxes: int = MAX_BOXES,
) -> list[LabeledBox]:
    """The boxes, checked against the image and the model's labels.

    Args:
        boxes: The submitted boxes, in source-image pixels.
        width: Image width in pixels.
        height: Image height in pixels.
        labels: The labels the model knows.
        min_size: Smallest accepted width and height, in pixels.
        max_boxes: Most boxes one image may carry.

    Returns:
        The boxes (without detector scores: they are a person's now).

    Raises:
        InvalidAnnotationError: naming each refused box's index and reason.
    """
    if len(boxes) > max_boxes:
        raise InvalidAnnotationError(
            [BoxRejection(max_boxes, f"at most {max_boxes} boxes per image, got {len(boxes)}")]
        )
    known = frozenset(labels)
    rejections = [
        BoxRejection(i, reason)
        for i, box in enumerate(boxes)
        if (reason := _box_reason(box, width, height, known, min_size)) is not None
    ]
    if rejections:
        raise InvalidAnnotationError(rejections)
    return [LabeledBox(b.label, b.x1, b.y1, b.x2, b.y2) for b in boxes]
