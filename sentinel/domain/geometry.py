"""Plane geometry on normalised frame coordinates: polygons, segments and sides of a line.

Points are ``(x, y)`` with ``(0, 0)`` the frame's top-left corner and ``(1, 1)`` its
bottom-right (see :mod:`sentinel.domain.scene`), so y grows downwards. Everything here is plain
Python on floats (no numpy): zones and lines hold a handful of points and are checked a few
times per tracked object per frame.

Boundaries: a point on a polygon's edge or vertex is inside it, and segments that only touch
(an endpoint on the other segment) intersect. Both use the tolerance ``EPS``, far below a pixel
of any real frame, so a bottom centre that lands exactly on a zone's edge counts as in.
"""

from __future__ import annotations

from collections.abc import Sequence

from sentinel.domain.scene import Point

# Tolerance for "on the line" tests, in normalised units (a 10,000-pixel-wide frame's pixel is
# 1e-4): absorbs float rounding without merging distinct points.
EPS = 1e-9
# Smallest polygon area accepted, as a fraction of the frame (~0.4 px² on a 768x576 frame).
MIN_AREA = 1e-6


def cross(o: Point, a: Point, b: Point) -> float:
    """The z component of ``(a - o) x (b - o)``: positive when ``o → a → b`` turns clockwise on
    screen (y down), negative when it turns anticlockwise, zero when the three are collinear."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def line_side(p: Point, a: Point, b: Point) -> int:
    """Which side of the directed line ``a → b`` the point ``p`` is on.

    Returns:
        ``1`` on the left as drawn (looking from ``a`` towards ``b`` on screen, y down: the
        "in" side of :class:`~sentinel.domain.scene.CrossDirection`), ``-1`` on the right
        ("out"), ``0`` on the line (within ``EPS``).
    """
    value = cross(a, b, p)
    # On screen (y down) a point on the viewer's left of a → b gives a negative cross product.
    if value < -EPS:
        return 1
    if value > EPS:
        return -1
    return 0


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    """Whether ``p``, known to be collinear with ``a`` and ``b``, lies between them."""
    return (
        min(a[0], b[0]) - EPS <= p[0] <= max(a[0], b[0]) + EPS
        and min(a[1], b[1]) - EPS <= p[1] <= max(a[1], b[1]) + EPS
    )


def point_on_segment(p: Point, a: Point, b: Point) -> bool:
    """Whether ``p`` lies on the closed segment ``a``-``b`` (within ``EPS``)."""
    length = max(abs(b[0] - a[0]), abs(b[1] - a[1]), EPS)
    # Scale the tolerance by the segment's length so it measures distance, not area.
    return abs(cross(a, b, p)) <= EPS * length and _on_segment(p, a, b)


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether the closed segments ``p1``-``p2`` and ``q1``-``q2`` share a point.

    Touching counts (an endpoint on the other segment), and so do collinear overlapping
    segments.
    """
    d1, d2 = cross(q1, q2, p1), cross(q1, q2, p2)
    d3, d4 = cross(p1, p2, q1), cross(p1, p2, q2)
    if ((d1 > EPS and d2 < -EPS) or (d1 < -EPS and d2 > EPS)) and (
        (d3 > EPS and d4 < -EPS) or (d3 < -EPS and d4 > EPS)
    ):
        return True
    return (
        (abs(d1) <= EPS and _on_segment(p1, q1, q2))
        or (abs(d2) <= EPS and _on_segment(p2, q1, q2))
        or (abs(d3) <= EPS and _on_segment(q1, p1, p2))
        or (abs(d4) <= EPS and _on_segment(q2, p1, p2))
    )


def polygon_area(polygon: Sequence[Point]) -> float:
    """The polygon's area (shoelace formula; meaningful for a simple polygon)."""
    n = len(polygon)
    twice = sum(
        polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1]
        for i in range(n)
    )
    return abs(twice) / 2.0


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Whether ``p`` is inside ``polygon`` or on its boundary (even-odd rule).

    Args:
        p: The point.
        polygon: The polygon's vertices in order (either winding), not repeating the first.

    Returns:
        True inside or on an edge or vertex (within ``EPS``), False outside.
    """
    n = len(polygon)
    if n < 3:
        return False
    x, y = p
    inside = False
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if point_on_segment(p, a, b):
            return True
        # Crossing number: count edges straddling the horizontal ray to the right of p; the
        # half-open test (one endpoint strictly above) counts a vertex on the ray once.
        if (a[1] > y) != (b[1] > y):
            x_cross = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x_cross > x:
                inside = not inside
    return inside


def polygon_problem(polygon: Sequence[Point]) -> str | None:
    """Why ``polygon`` cannot be a zone or mask, or ``None`` when it can.

    A valid polygon has at least 3 vertices, all within ``[0, 1]`` on both axes, no repeated
    consecutive vertex, no two edges crossing or overlapping (other than neighbours sharing
    their vertex) and an area of at least ``MIN_AREA`` of the frame.

    Args:
        polygon: The vertices in order, not repeating the first.

    Returns:
        A sentence saying what is wrong, naming the offending vertices or edges, or ``None``.
    """
    n = len(polygon)
    if n < 3:
        return f"a polygon needs at least 3 points, but got {n}"
    for i, (x, y) in enumerate(polygon):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return f"point {i} ({x}, {y}) is outside the frame: coordinates must be in [0, 1]"
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if abs(a[0] - b[0]) <= EPS and abs(a[1] - b[1]) <= EPS:
            return f"points {i} and {(i + 1) % n} are the same point"
    for i in range(n):
        a1, a2 = polygon[i], polygon[(i + 1) % n]
        for j in range(i + 1, n):
            b1, b2 = polygon[j], polygon[(j + 1) % n]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbours share a vertex; they only overlap when the path folds back on
                # itself along one line.
                shared, far_a, far_b = (a2, a1, b2) if j == i + 1 else (a1, a2, b1)
                folded = abs(cross(shared, far_a, far_b)) <= EPS and (
                    (far_a[0] - shared[0]) * (far_b[0] - shared[0])
                    + (far_a[1] - shared[1]) * (far_b[1] - shared[1])
                    > 0.0
                )
                if folded:
                    return f"edges {i} and {j} overlap: the polygon folds back on itself"
                continue
            if segments_intersect(a1, a2, b1, b2):
                return f"edges {i} and {j} cross: the polygon must not intersect itself"
    area = polygon_area(polygon)
    if area < MIN_AREA:
        return f"the polygon has (almost) no area ({area:.2g} of the frame)"
    return None
