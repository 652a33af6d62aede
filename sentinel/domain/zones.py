"""Where a camera's tracked objects are relative to its zones and lines, frame by frame.

A :class:`ZoneTracker` is fed each analysed frame's tracked objects (boxes in pixels) with the
frame's size and wall time, and answers with the frame's :class:`SceneEvent`s, which the rule
engine matches. An object's position is the bottom centre of its box (where it stands), in
normalised coordinates (see :mod:`sentinel.domain.scene`).

- ``SEEN``: every visible object, every frame; ``count`` is the objects of its label in view.
- ``ENTER`` / ``EXIT``: an object's membership of a zone changes only after ``inertia``
  consecutive visible frames on the other side of the zone's boundary, so a box jittering on
  an edge does not flicker in and out. Its dwell runs from the first of the frames that made
  it enter to the last frame it was seen inside. ``EXIT`` carries the dwell; a track that
  disappears (removed by the tracker, or no longer passed in) leaves every zone it was in.
- ``DWELL``: every visible frame an object is a member of a zone (the ``ENTER`` frame
  included), with the dwell so far; ``count`` (also on ``ENTER``) is the zone's members of its
  label, momentarily unseen (lost) tracks included.
- ``CROSS``: the object's position moved from one side of a line to the other and its path
  between the two frames meets the line segment (crossing the line's extension beyond ``a`` or
  ``b`` does not count); ``direction`` is the side it crossed to. A frame where the position
  lies exactly on the line is skipped, so touching the line and turning back is no crossing.

Objects passed with ``visible=False`` (tracked but not matched on this frame) keep their state
and produce no event: a walker occluded for a frame neither leaves nor re-enters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sentinel.domain.geometry import line_side, point_in_polygon, polygon_problem
from sentinel.domain.geometry import segments_intersect as _meets
from sentinel.domain.scene import CrossDirection, Point, SceneEvent, SceneEventKind
from sentinel.domain.types import Box

DEFAULT_INERTIA = 3


@dataclass(frozen=True)
class Zone:
    """A named area of the frame.

    Attributes:
        name: Unique among the camera's zones.
        polygon: Vertices in normalised coordinates, in order (see
            :func:`~sentinel.domain.geometry.polygon_problem` for what is valid).
        inertia: Consecutive visible frames inside (or outside) before an object enters (or
            leaves).
        labels: Labels the zone tracks; ``None`` tracks every label.
    """

    name: str
    polygon: tuple[Point, ...]
    inertia: int = DEFAULT_INERTIA
    labels: frozenset[str] | None = None

    def __post_init__(self) -> None:
        problem = polygon_problem(self.polygon)
        if problem is not None:
            raise ValueError(f"zone {self.name!r}: {problem}")
        if self.inertia < 1:
            raise ValueError(f"zone {self.name!r}: inertia must be >= 1, but got {self.inertia}")

    def tracks(self, label: str) -> bool:
        """Whether objects labelled ``label`` can be in this zone."""
        return self.labels is None or label in self.labels


@dataclass(frozen=True)
class Line:
    """A named segment objects cross, from ``a`` to ``b`` (its "in" side is its left as drawn,
    see :class:`~sentinel.domain.scene.CrossDirection`).

    Attributes:
        name: Unique among the camera's lines.
        a: Start, normalised.
        b: End, normalised.
        direction: The only direction reported; ``None`` reports both.
    """

    name: str
    a: Point
    b: Point
    direction: CrossDirection | None = None

    def __post_init__(self) -> None:
        for end, (x, y) in (("a", self.a), ("b", self.b)):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"line {self.name!r}: {end} ({x}, {y}) is outside the frame: "
                    "coordinates must be in [0, 1]"
                )
        if self.a == self.b:
            raise ValueError(f"line {self.name!r}: a and b are the same point")


@dataclass(frozen=True, slots=True)
class SceneObject:
    """One tracked object on one frame, as the zone tracker needs it.

    Attributes:
        track_id: The tracker's id.
        label: Class label.
        score: Detector confidence (of the last match).
        box: Box in frame pixels (of the last match).
        event_id: The object's event, when it has one.
        visible: Whether the object was matched on this frame; an unseen one keeps its state.
    """

    track_id: int
    label: str
    score: float
    box: Box
    event_id: str | None = None
    visible: bool = True


def foot_point(box: Box, width: int, height: int) -> Point:
    """The bottom centre of ``box`` (pixels) in normalised coordinates, clamped to the frame."""
    x = min(max((box.x1 + box.x2) / 2.0 / width, 0.0), 1.0)
    y = min(max(box.y2 / height, 0.0), 1.0)
    return (x, y)


@dataclass
class _Membership:
    """One object's standing with one zone."""

    inside: bool = False  # committed membership
    streak: int = 0  # consecutive visible frames contradicting ``inside``
    streak_start: datetime | None = None
    entered_at: datetime | None = None
    last_inside_at: datetime | None = None

    def dwell_s(self, until: datetime | None) -> float:
        if self.entered_at is None or until is None:
            return 0.0
        return max((until - self.entered_at).total_seconds(), 0.0)


@dataclass
class _Object:
    label: str
    score: float
    event_id: str | None
    zones: dict[str, _Membership] = field(default_factory=dict)
    # Per line: the last side the object was strictly on, and where it was then.
    sides: dict[str, tuple[int, Point]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A scene event whose ``count`` is filled in once the whole frame is known."""

    kind: SceneEventKind
    track_id: int
    zone: str | None = None
    line: str | None = None
    direction: CrossDirection | None = None
    dwell_s: float = 0.0


class ZoneTracker:
    """Zone membership and line crossings of one camera's tracked objects.

    Args:
        camera_id: The camera (copied onto every event).
        zones: The camera's zones (unique names).
        lines: The camera's lines (unique names).

    Raises:
        ValueError: If two zones or two lines share a name.
    """

    def __init__(
        self, camera_id: str, zones: Sequence[Zone] = (), lines: Sequence[Line] = ()
    ) -> None:
        for kind, names in (("zone", [z.name for z in zones]), ("line", [ln.name for ln in lines])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind} names must be unique, but {duplicates} appear twice")
        self.camera_id = camera_id
        self.zones = tuple(zones)
        self.lines = tuple(lines)
        self._objects: dict[int, _Object] = {}

    @property
    def active(self) -> bool:
        """Whether there is anything to track: at least one zone or line."""
        return bool(self.zones or self.lines)

    def counts(self, zone: str) -> dict[str, int]:
        """Members of ``zone`` per label (momentarily unseen tracks included).

        Raises:
            KeyError: If the camera has no such zone.
        """
        if zone not in {z.name for z in self.zones}:
            raise KeyError(f"no zone {zone!r}")
        counts: dict[str, int] = {}
        for obj in self._objects.values():
            membership = obj.zones.get(zone)
            if membership is not None and membership.inside:
                counts[obj.label] = counts.get(obj.label, 0) + 1
        return dict(sorted(counts.items()))

    def update(
        self, objects: Sequence[SceneObject], width: int, height: int, at: datetime
    ) -> list[SceneEvent]:
        """Take one frame's objects and return what they did.

        Args:
            objects: Every live track (visible or not); a track known before and missing here
                is forgotten, leaving its zones.
            width: Frame width in pixels.
            height: Frame height in pixels.
            at: Wall-clock time of the frame (timezone-aware).

        Returns:
            The frame's events: ``SEEN`` for each visible object, then per object (by track id)
            its ``ENTER``, ``DWELL``, ``EXIT`` and ``CROSS`` events, then the ``EXIT`` events of
            forgotten tracks.

        Raises:
            ValueError: If the frame size is not positive or a track id repeats.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, but got {width}x{height}")
        ids = [o.track_id for o in objects]
        if len(set(ids)) != len(ids):
            raise ValueError(f"track ids must be unique on a frame, but got {sorted(ids)}")
        pending: list[_Pending] = []
        for obj in sorted(objects, key=lambda o: o.track_id):
            state = self._objects.get(obj.track_id)
            if state is None:
                state = self._objects[obj.track_id] = _Object(obj.label, obj.score, obj.event_id)
            state.label, state.score = obj.label, obj.score
            state.event_id = obj.event_id or state.event_id
            if obj.visible:
                pending.append(_Pending(SceneEventKind.SEEN, obj.track_id))
                point = foot_point(obj.box, width, height)
                pending += self._observe(obj.track_id, state, point, at)
        known = dict(self._objects)
        for track_id in sorted(set(known) - set(ids)):
            for zone in self.zones:
                membership = known[track_id].zones.get(zone.name)
                if membership is not None and membership.inside:
                    membership.inside = False
                    dwell = membership.dwell_s(membership.last_inside_at)
                    pending.append(
                        _Pending(SceneEventKind.EXIT, track_id, zone.name, dwell_s=dwell)
                    )
            del self._objects[track_id]
        return self._events(pending, objects, known, at)

    def forget_all(self, at: datetime) -> list[SceneEvent]:
        """Forget every object (the camera stops): the ``EXIT`` events of the zones' members."""
        return self.update([], 1, 1, at)

    def _observe(self, track_id: int, state: _Object, point: Point, at: datetime) -> list[_Pending]:
        out: list[_Pending] = []
        for zone in self.zones:
            if not zone.tracks(state.label):
                continue
            membership = state.zones.setdefault(zone.name, _Membership())
            inside = point_in_polygon(point, zone.polygon)
            previous_inside_at = membership.last_inside_at
            if inside:
                membership.last_inside_at = at
            if inside == membership.inside:
                membership.streak = 0
            else:
                if membership.streak == 0:
                    membership.streak_start = at
                membership.streak += 1
                if membership.streak >= zone.inertia:
                    membership.inside, membership.streak = inside, 0
                    if inside:
                        membership.entered_at = membership.streak_start
                        out.append(_Pending(SceneEventKind.ENTER, track_id, zone.name))
                    else:
                        dwell = membership.dwell_s(previous_inside_at)
                        out.append(
                            _Pending(SceneEventKind.EXIT, track_id, zone.name, dwell_s=dwell)
                        )
            if membership.inside:
                dwell = membership.dwell_s(at)
                out.append(_Pending(SceneEventKind.DWELL, track_id, zone.name, dwell_s=dwell))
        for line in self.lines:
            side = line_side(point, line.a, line.b)
            if side == 0:
                continue
            before = state.sides.get(line.name)
            state.sides[line.name] = (side, point)
            if before is None or before[0] == side or not _meets(before[1], point, line.a, line.b):
                continue
            direction = CrossDirection.IN if side == 1 else CrossDirection.OUT
            if line.direction is None or line.direction == direction:
                out.append(
                    _Pending(SceneEventKind.CROSS, track_id, line=line.name, direction=direction)
                )
        return out

    def _events(
        self,
        pending: list[_Pending],
        objects: Sequence[SceneObject],
        known: dict[int, _Object],
        at: datetime,
    ) -> list[SceneEvent]:
        """The events of ``pending``, counted once the frame's memberships are settled."""
        in_view: dict[str, int] = {}
        for obj in objects:
            if obj.visible:
                in_view[obj.label] = in_view.get(obj.label, 0) + 1
        in_zone = {zone.name: self.counts(zone.name) for zone in self.zones}
        events: list[SceneEvent] = []
        for p in pending:
            state = known[p.track_id]
            label = state.label
            if p.kind is SceneEventKind.SEEN:
                count = in_view[label]
            elif p.zone is not None:
                count = in_zone[p.zone].get(label, 0)
            else:
                count = 1
            events.append(
                SceneEvent(
                    kind=p.kind,
                    camera_id=self.camera_id,
                    track_id=p.track_id,
                    event_id=state.event_id,
                    label=label,
                    score=state.score,
                    at=at,
                    zone=p.zone,
                    line=p.line,
                    direction=p.direction,
                    dwell_s=p.dwell_s,
                    count=count,
                )
            )
        return events
