"""Masks: parts of the frame the pipeline ignores.

A **motion mask** is a polygon the motion gate does not look at (a swaying tree, a clock, a
road beyond the fence): its pixels are zeroed in both the frame and the background before they
are compared, using a boolean image rasterised once per frame size (:func:`rasterise`). An
**object mask** drops the detections standing in it (the bottom centre of the box inside the
polygon, as for zones), optionally only those of some labels (a poster of a person, a parked
car's spot), before they reach the tracker.

Polygons are in normalised coordinates (see :mod:`sentinel.domain.scene`) and validated like
zones (:func:`~sentinel.domain.geometry.polygon_problem`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.geometry import point_in_polygon, polygon_problem
from sentinel.domain.scene import Point
from sentinel.domain.types import Box
from sentinel.domain.zones import foot_point

Polygon = tuple[Point, ...]


def check_polygon(polygon: Sequence[Point], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``polygon`` is not a valid zone or mask."""
    problem = polygon_problem(polygon)
    if problem is not None:
        raise ValueError(f"{what}: {problem}")


@dataclass(frozen=True)
class ObjectMask:
    """Detections standing in ``polygon`` are dropped.

    Attributes:
        polygon: Vertices, normalised.
        labels: Labels dropped; ``None`` drops every label.
    """

    polygon: Polygon
    labels: frozenset[str] | None = None

    def __post_init__(self) -> None:
        check_polygon(self.polygon, "object mask")

    def hides(self, label: str, box: Box, width: int, height: int) -> bool:
        """Whether a detection of ``label`` at ``box`` (pixels of a ``width`` x ``height``
        frame) stands in this mask."""
        if self.labels is not None and label not in self.labels:
            return False
        return point_in_polygon(foot_point(box, width, height), self.polygon)


def rasterise(polygons: Sequence[Sequence[Point]], width: int, height: int) -> NDArray[np.bool_]:
    """A ``(height, width)`` image, True on the pixels whose centre is in any of ``polygons``.

    Even-odd rule per polygon (the polygons are simple, so it is plain inside/outside), pixel
    centres at ``((j + 0.5) / width, (i + 0.5) / height)``. Vectorised over the pixels: a few
    milliseconds for a 96x72 gate frame, done once per frame size.

    Raises:
        ValueError: If the size is not positive.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"mask size must be positive, but got {width}x{height}")
    xs = (np.arange(width, dtype=np.float64) + 0.5) / width
    ys = (np.arange(height, dtype=np.float64) + 0.5) / height
    px, py = np.meshgrid(xs, ys)
    masked = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        inside = np.zeros((height, width), dtype=bool)
        n = len(polygon)
        for i in range(n):
            (ax, ay), (bx, by) = polygon[i], polygon[(i + 1) % n]
            if ay == by:
                continue  # a horizontal edge never straddles a pixel row's ray
            straddles = (ay > py) != (by > py)
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
            inside ^= straddles & (x_cross > px)
        masked |= inside
    return masked
