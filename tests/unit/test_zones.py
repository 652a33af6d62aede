from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.domain.scene import CrossDirection, Point, SceneEvent, SceneEventKind
from sentinel.domain.types import Box
from sentinel.domain.zones import Line, SceneObject, Zone, ZoneTracker, foot_point

CAM = "cam-1"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
W, H = 200, 100  # frame size in pixels
SQUARE: tuple[Point, ...] = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
IN, OUT = (0.4, 0.4), (0.8, 0.4)  # foot points inside and outside SQUARE
ENTER, EXIT, DWELL, CROSS, SEEN = (
    SceneEventKind.ENTER,
    SceneEventKind.EXIT,
    SceneEventKind.DWELL,
    SceneEventKind.CROSS,
    SceneEventKind.SEEN,
)


def obj(track_id: int, foot: Point, label: str = "person", *, visible: bool = True) -> SceneObject:
    """A 20x40 px object standing at ``foot`` (normalised)."""
    x, y = foot[0] * W, foot[1] * H
    box = Box(x - 10, y - 40, x + 10, y)
    return SceneObject(track_id, label, 0.9, box, event_id=f"ev-{track_id}", visible=visible)


def at(frame: int) -> datetime:
    return T0 + timedelta(seconds=frame * 0.2)


def run(tracker: ZoneTracker, frames: Sequence[Sequence[SceneObject]]) -> list[list[SceneEvent]]:
    return [tracker.update(objects, W, H, at(i)) for i, objects in enumerate(frames)]


def kinds(events: list[SceneEvent], *, skip_seen: bool = True) -> list[SceneEventKind]:
    return [e.kind for e in events if not (skip_seen and e.kind is SEEN)]


def test_foot_point_is_bottom_centre_clamped() -> None:
    assert foot_point(Box(10, 20, 30, 60), 100, 100) == (0.2, 0.6)
    assert foot_point(Box(-50, 20, -10, 120), 100, 100) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("inertia", "path", "expected"),
    [
        # Inertia 1: enter on the first frame inside, leave on the first outside.
        (1, [OUT, IN, IN, OUT], [[], [ENTER, DWELL], [DWELL], [EXIT]]),
        # Inertia 3: three frames inside to enter; a dip outside shorter than 3 keeps it in.
        (
            3,
            [IN, IN, IN, OUT, OUT, IN, OUT, OUT, OUT],
            [[], [], [ENTER, DWELL], [DWELL], [DWELL], [DWELL], [DWELL], [DWELL], [EXIT]],
        ),
        # Inertia 3: a streak interrupted before 3 never enters.
        (3, [IN, IN, OUT, IN, IN, OUT], [[], [], [], [], [], []]),
    ],
)
def test_inertia(inertia: int, path: list[Point], expected: list[list[SceneEventKind]]) -> None:
    tracker = ZoneTracker(CAM, [Zone("yard", SQUARE, inertia=inertia)])
    events = run(tracker, [[obj(1, p)] for p in path])
    assert [kinds(e) for e in events] == expected


def test_dwell_runs_from_the_first_frame_inside_to_the_last() -> None:
    tracker = ZoneTracker(CAM, [Zone("yard", SQUARE, inertia=3)])
    path = [OUT, IN, IN, IN, IN, OUT, OUT, OUT]
    events = [
        [e for e in frame if e.kind is not SEEN]
        for frame in run(tracker, [[obj(1, p)] for p in path])
    ]
    (enter, dwell) = events[3]
    assert enter.kind is ENTER and enter.zone == "yard" and enter.count == 1
    assert dwell.dwell_s == pytest.approx(0.4)  # frames 1..3, 0.2 s apart
    assert [e.dwell_s for e in events[4]] == [pytest.approx(0.6)]
    assert events[6][0].dwell_s == pytest.approx(1.0)  # still a member while leaving
    (leave,) = events[7]
    assert leave.kind is EXIT and leave.dwell_s == pytest.approx(0.6)  # last inside: frame 4
    assert tracker.counts("yard") == {}


def test_every_event_carries_the_object() -> None:
    tracker = ZoneTracker(CAM, [Zone("yard", SQUARE, inertia=1)])
    (events,) = run(tracker, [[obj(7, IN)]])
    assert [(e.kind, e.zone) for e in events] == [(SEEN, None), (ENTER, "yard"), (DWELL, "yard")]
    for e in events:
        assert (e.camera_id, e.track_id, e.event_id, e.label, e.score, e.at) == (
            CAM,
            7,
            "ev-7",
            "person",
            0.9,
            at(0),
        )


def test_unseen_objects_keep_their_state_and_stay_quiet() -> None:
    tracker = ZoneTracker(CAM, [Zone("yard", SQUARE, inertia=1)])
    events = run(
        tracker,
        [[obj(1, IN)], [obj(1, OUT, visible=False)], [obj(1, IN)]],
    )
    assert [kinds(e, skip_seen=False) for e in events] == [
        [SEEN, ENTER, DWELL],
        [],
        [SEEN, DWELL],
    ]
    assert tracker.counts("yard") == {"person": 1}


def test_track_loss_exits_every_zone() -> None:
    inner = ((0.3, 0.3), (0.5, 0.3), (0.5, 0.5), (0.3, 0.5))
    tracker = ZoneTracker(CAM, [Zone("yard", SQUARE, inertia=1), Zone("door", inner, inertia=1)])
    events = run(tracker, [[obj(1, IN), obj(2, IN)], [obj(1, IN), obj(2, IN)], [obj(2, IN)]])
    gone = [e for e in events[2] if e.track_id == 1]
    assert [(e.kind, e.zone, e.count) for e in gone] == [(EXIT, "yard", 1), (EXIT, "door", 1)]
    assert gone[0].dwell_s == pytest.approx(0.2)
    assert tracker.counts("yard") == {"person": 1}
    assert [(e.kind, e.track_id) for e in tracker.forget_all(at(3))] == [
        (EXIT, 2),
        (EXIT, 2),
    ]
    assert tracker.counts("door") == {}
    assert tracker.update([], W, H, at(4)) == []


def test_counts_per_label_and_seen_counts_in_view() -> None:
    tracker = ZoneTracker(CAM, [Zone("yard", SQUARE, inertia=1)])
    frame = [obj(1, IN), obj(2, IN), obj(3, OUT), obj(4, IN, "car"), obj(5, OUT, "car")]
    (events,) = run(tracker, [frame])
    seen = {(e.track_id, e.count) for e in events if e.kind is SEEN}
    assert seen == {(1, 3), (2, 3), (3, 3), (4, 2), (5, 2)}
    entered = {(e.track_id, e.label, e.count) for e in events if e.kind is ENTER}
    assert entered == {(1, "person", 2), (2, "person", 2), (4, "car", 1)}
    assert tracker.counts("yard") == {"car": 1, "person": 2}
    with pytest.raises(KeyError):
        tracker.counts("nowhere")


def test_zone_label_filter() -> None:
    tracker = ZoneTracker(CAM, [Zone("lot", SQUARE, inertia=1, labels=frozenset({"car"}))])
    (events,) = run(tracker, [[obj(1, IN), obj(2, IN, "car")]])
    assert [(e.kind, e.track_id) for e in events if e.kind is not SEEN] == [
        (ENTER, 2),
        (DWELL, 2),
    ]


# A line across the frame from left to right at y = 0.5: "in" is above it (its left as drawn).
ACROSS = Line("gate", (0.2, 0.5), (0.8, 0.5))


@pytest.mark.parametrize(
    ("line", "path", "crossings"),
    [
        (ACROSS, [(0.5, 0.7), (0.5, 0.3)], [(1, CrossDirection.IN)]),
        (ACROSS, [(0.5, 0.3), (0.5, 0.7)], [(1, CrossDirection.OUT)]),
        # Back and forth: one crossing each way.
        (
            ACROSS,
            [(0.5, 0.3), (0.5, 0.7), (0.5, 0.6), (0.5, 0.4)],
            [(1, CrossDirection.OUT), (3, CrossDirection.IN)],
        ),
        # Passing beyond the segment's end crosses the line's extension only.
        (ACROSS, [(0.9, 0.7), (0.9, 0.3)], []),
        (ACROSS, [(0.1, 0.3), (0.1, 0.7)], []),
        # A diagonal step from beside the segment to across it does meet it.
        (ACROSS, [(0.9, 0.6), (0.7, 0.4)], [(1, CrossDirection.IN)]),
        # Stepping onto the line and back is no crossing; onto it and over is one.
        (ACROSS, [(0.5, 0.3), (0.5, 0.5), (0.5, 0.3)], []),
        (ACROSS, [(0.5, 0.3), (0.5, 0.5), (0.5, 0.7)], [(2, CrossDirection.OUT)]),
        # Moving along one side only.
        (ACROSS, [(0.3, 0.3), (0.5, 0.3), (0.7, 0.3)], []),
        # A one-way line reports only its direction.
        (
            Line("gate", (0.2, 0.5), (0.8, 0.5), CrossDirection.IN),
            [(0.5, 0.3), (0.5, 0.7), (0.5, 0.3)],
            [(2, CrossDirection.IN)],
        ),
        (
            Line("gate", (0.2, 0.5), (0.8, 0.5), CrossDirection.OUT),
            [(0.5, 0.3), (0.5, 0.7), (0.5, 0.3)],
            [(1, CrossDirection.OUT)],
        ),
        # Drawn the other way round, the sides swap.
        (
            Line("gate", (0.8, 0.5), (0.2, 0.5)),
            [(0.5, 0.7), (0.5, 0.3)],
            [(1, CrossDirection.OUT)],
        ),
    ],
)
def test_line_crossing(
    line: Line, path: list[Point], crossings: list[tuple[int, CrossDirection]]
) -> None:
    tracker = ZoneTracker(CAM, lines=[line])
    events = run(tracker, [[obj(1, p)] for p in path])
    found = [(i, e.direction) for i, frame in enumerate(events) for e in frame if e.kind is CROSS]
    assert found == crossings
    assert all(e.line == "gate" for frame in events for e in frame if e.kind is CROSS)


def test_crossing_spans_unseen_frames() -> None:
    tracker = ZoneTracker(CAM, lines=[ACROSS])
    events = run(
        tracker,
        [[obj(1, (0.5, 0.3))], [obj(1, (0.5, 0.7), visible=False)], [obj(1, (0.5, 0.8))]],
    )
    assert [kinds(e) for e in events] == [[], [], [CROSS]]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Zone("z", ((0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9))), "cross"),
        (lambda: Zone("z", SQUARE, inertia=0), "inertia"),
        (lambda: Line("l", (0.5, 0.5), (0.5, 0.5)), "same point"),
        (lambda: Line("l", (0.5, 0.5), (1.5, 0.5)), "outside the frame"),
        (lambda: ZoneTracker(CAM, [Zone("z", SQUARE), Zone("z", SQUARE)]), "unique"),
        (lambda: ZoneTracker(CAM, lines=[ACROSS, ACROSS]), "unique"),
        (lambda: ZoneTracker(CAM).update([obj(1, IN), obj(1, OUT)], W, H, T0), "unique"),
        (lambda: ZoneTracker(CAM).update([], 0, H, T0), "positive"),
    ],
)
def test_bad_input_is_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]
