from __future__ import annotations

import pytest

from sentinel.domain.geometry import (
    line_side,
    point_in_polygon,
    polygon_area,
    polygon_problem,
    segments_intersect,
)
from sentinel.domain.scene import Point

SQUARE: list[Point] = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
# A "U" shape: the notch (0.4..0.6 wide, from the top down to y = 0.6) is outside.
U_SHAPE: list[Point] = [
    (0.2, 0.2),
    (0.4, 0.2),
    (0.4, 0.6),
    (0.6, 0.6),
    (0.6, 0.2),
    (0.8, 0.2),
    (0.8, 0.8),
    (0.2, 0.8),
]


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((0.5, 0.5), SQUARE, True),
        ((0.1, 0.5), SQUARE, False),
        ((0.9, 0.9), SQUARE, False),
        ((0.2, 0.5), SQUARE, True),  # on the left edge: the boundary is inside
        ((0.8, 0.8), SQUARE, True),  # on a vertex
        ((0.5, 0.2), SQUARE, True),  # on the top edge
        ((0.5, 0.2 - 1e-6), SQUARE, False),  # just above it
        ((0.5, 0.4), U_SHAPE, False),  # in the notch
        ((0.3, 0.4), U_SHAPE, True),  # in the left arm
        ((0.5, 0.7), U_SHAPE, True),  # below the notch
        ((0.5, 0.6), U_SHAPE, True),  # on the notch's floor
        ((0.1, 0.6), U_SHAPE, False),  # level with a vertex, left of the polygon
        ((0.3, 0.2), list(reversed(SQUARE)), True),  # winding does not matter
        ((0.5, 0.5), [(0.1, 0.1), (0.9, 0.1)], False),  # not a polygon
    ],
)
def test_point_in_polygon(point: Point, polygon: list[Point], inside: bool) -> None:
    assert point_in_polygon(point, polygon) is inside


@pytest.mark.parametrize(
    ("point", "side"),
    [
        # The line runs left to right across the screen: "in" (its left as drawn) is above.
        ((0.5, 0.2), 1),
        ((0.5, 0.8), -1),
        ((0.9, 0.5), 0),  # on the line (beyond b still counts: the line is infinite here)
    ],
)
def test_line_side_left_to_right(point: Point, side: int) -> None:
    assert line_side(point, (0.1, 0.5), (0.7, 0.5)) == side


@pytest.mark.parametrize(
    ("a", "b", "point", "side"),
    [
        ((0.5, 0.1), (0.5, 0.9), (0.8, 0.5), 1),  # going down the screen, left is screen-right
        ((0.5, 0.1), (0.5, 0.9), (0.2, 0.5), -1),
        ((0.5, 0.9), (0.5, 0.1), (0.2, 0.5), 1),  # going up, left is screen-left
        ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), 1),  # heading down-right, top-right is left
    ],
)
def test_line_side_directions(a: Point, b: Point, point: Point, side: int) -> None:
    assert line_side(point, a, b) == side


@pytest.mark.parametrize(
    ("p1", "p2", "q1", "q2", "hit"),
    [
        ((0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), True),  # an X
        ((0.0, 0.0), (0.4, 0.4), (0.0, 1.0), (1.0, 0.0), False),  # stops short
        ((0.0, 0.0), (0.5, 0.5), (0.0, 1.0), (1.0, 0.0), True),  # endpoint on the other
        ((0.0, 0.0), (1.0, 0.0), (0.0, 0.1), (1.0, 0.1), False),  # parallel
        ((0.0, 0.0), (0.6, 0.0), (0.4, 0.0), (1.0, 0.0), True),  # collinear, overlapping
        ((0.0, 0.0), (0.3, 0.0), (0.4, 0.0), (1.0, 0.0), False),  # collinear, apart
        ((0.2, 0.3), (0.2, 0.7), (0.1, 0.5), (0.3, 0.5), True),  # a plus sign
        ((0.5, 0.3), (0.5, 0.7), (0.1, 0.5), (0.3, 0.5), False),  # beyond the segment's end
    ],
)
def test_segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point, hit: bool) -> None:
    assert segments_intersect(p1, p2, q1, q2) is hit
    assert segments_intersect(q1, q2, p1, p2) is hit
    assert segments_intersect(p2, p1, q2, q1) is hit


def test_polygon_area() -> None:
    assert polygon_area(SQUARE) == pytest.approx(0.36)
    assert polygon_area(list(reversed(SQUARE))) == pytest.approx(0.36)
    assert polygon_area(U_SHAPE) == pytest.approx(0.36 - 0.08)


@pytest.mark.parametrize(
    ("polygon", "problem"),
    [
        (SQUARE, None),
        (U_SHAPE, None),
        ([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)], None),  # the frame's corners are allowed
        ([(0.1, 0.1), (0.9, 0.1)], "at least 3 points"),
        ([(0.1, 0.1), (1.2, 0.1), (0.5, 0.9)], "point 1 (1.2, 0.1) is outside the frame"),
        ([(0.1, -0.1), (0.9, 0.1), (0.5, 0.9)], "point 0 (0.1, -0.1) is outside the frame"),
        # A bow tie: edges 0 (top-left → bottom-right) and 2 cross.
        ([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)], "edges 0 and 2 cross"),
        ([(0.1, 0.1), (0.1, 0.1), (0.9, 0.1), (0.5, 0.9)], "points 0 and 1 are the same"),
        ([(0.1, 0.1), (0.5, 0.1), (0.9, 0.1)], "folds back"),  # 0 → 2 → back over 0 → 1
        ([(0.1, 0.1), (0.9, 0.1), (0.5, 0.1), (0.5, 0.9)], "folds back"),
        ([(0.1, 0.1), (0.5, 0.1000001), (0.9, 0.1)], "no area"),
        # A pentagram drawn as one star path: many crossings.
        (
            [(0.5, 0.0), (0.8, 0.9), (0.0, 0.35), (1.0, 0.35), (0.2, 0.9)],
            "cross",
        ),
    ],
)
def test_polygon_problem(polygon: list[Point], problem: str | None) -> None:
    found = polygon_problem(polygon)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found
