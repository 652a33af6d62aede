"""The mining benchmark's error count: false positives and misses of one frame at IoU 0.5,
ignore regions neither."""

from __future__ import annotations

from benchmarks.mining import evenly_spaced, frame_errors
from sentinel.domain.annotation import LabeledBox
from sentinel.domain.types import Box, Detection


def det(x: float, score: float, label: str = "person") -> Detection:
    return Detection(Box(x, 0, x + 40, 100), label, score)


def gt(x: float) -> LabeledBox:
    return LabeledBox("person", x, 0, x + 40, 100)


def test_frame_errors() -> None:
    persons = [gt(0), gt(100), gt(300)]
    dets = [det(2, 0.9), det(101, 0.8), det(500, 0.7), det(300, 0.2), det(0, 0.6, "car")]
    # matched: 0, 100; FP: 500; the one at 300 is below the threshold: a miss
    assert frame_errors(dets, persons) == (1, 1)
    assert frame_errors(dets, persons, [gt(500)]) == (0, 1)  # on an ignore region: not an FP
    assert frame_errors([det(0, 0.9), det(1, 0.8)], [gt(0)]) == (1, 0)  # a duplicate box
    assert frame_errors([], persons) == (0, 3)


def test_evenly_spaced() -> None:
    assert evenly_spaced(50, 400) == list(range(0, 400, 8))
