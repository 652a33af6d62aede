"""Factories for synthetic boxes, detections, frames and clocks used by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.types import Box, Detection

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def box_at(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> Box:
    """A ``w`` x ``h`` box centred on ``(cx, cy)``."""
    return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def det(
    cx: float,
    cy: float,
    label: str = "person",
    score: float = 0.9,
    w: float = 40.0,
    h: float = 100.0,
) -> Detection:
    """A detection centred on ``(cx, cy)``."""
    return Detection(box=box_at(cx, cy, w, h), label=label, score=score)


def wall(ts: float) -> datetime:
    """The wall-clock time of stream second ``ts`` (stream starts at :data:`T0`)."""
    return T0 + timedelta(seconds=ts)


def gray(value: int = 100, shape: tuple[int, int] = (72, 96)) -> NDArray[np.uint8]:
    """A uniform grayscale frame."""
    return np.full(shape, value, dtype=np.uint8)


def gray_with_square(
    x: int, y: int, size: int = 12, background: int = 100, value: int = 220
) -> NDArray[np.uint8]:
    """A 96x72 grayscale frame with a bright square whose top-left corner is ``(x, y)``."""
    frame = gray(background)
    frame[y : y + size, x : x + size] = value
    return frame


def yolo_pred(
    rows: list[tuple[float, float, float, float, int, float]], nc: int
) -> NDArray[np.float32]:
    """A ``(4 + nc, N)`` YOLOv8 prediction from ``(cx, cy, w, h, class_id, score)`` rows."""
    pred = np.zeros((4 + nc, len(rows)), dtype=np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        pred[:4, i] = (cx, cy, w, h)
        pred[4 + cls, i] = score
    return pred
