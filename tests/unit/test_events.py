from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from sentinel.domain.events import EventBuilder, EventConfig
from sentinel.domain.tracking import Tracker, TrackerConfig
from sentinel.domain.types import Detection, EventChange, EventChangeKind, EventState, event_id
from tests.utils.factories import det, wall

CAM = "cam-1"
OPENED, UPDATED, CLOSED = EventChangeKind.OPENED, EventChangeKind.UPDATED, EventChangeKind.CLOSED


class Scene:
    """A tracker and an event builder driven together, as the pipeline does."""

    def __init__(self, config: EventConfig | None = None, epoch: str = "e1") -> None:
        self.config = config or EventConfig()
        self.tracker = Tracker(TrackerConfig(max_lost_s=self.config.close_after_s))
        self.builder = EventBuilder(CAM, epoch, self.config)
        self.changes: list[EventChange] = []

    def step(self, detections: Sequence[Detection], ts: float) -> list[EventChange]:
        update = self.tracker.update(detections, ts)
        changes = self.builder.on_update(update, ts, wall(ts))
        self.changes += changes
        return changes

    def run(
        self, start: float, stop: float, detections: Callable[[float], list[Detection]],
        fps: float = 10.0,
    ) -> None:  # fmt: skip
        for i in range(round((stop - start) * fps)):
            ts = round(start + i / fps, 6)
            self.step(detections(ts), ts)

    def kinds(self) -> list[EventChangeKind]:
        return [c.kind for c in self.changes]

    def ids(self) -> set[str]:
        return {c.event.id for c in self.changes}


def nothing(ts: float) -> list[Detection]:
    return []


def parked_car(ts: float) -> list[Detection]:
    return [det(600, 400, "car", 0.8, 200, 120)]


def test_one_person_walking_through_is_one_event() -> None:
    scene = Scene()
    scene.run(0.0, 12.0, lambda ts: [det(50 + 40 * ts, 300, score=0.6 + 0.02 * ts)])
    scene.run(12.0, 20.0, nothing)
    kinds = scene.kinds()
    assert kinds[0] == OPENED and kinds[-1] == CLOSED
    assert kinds.count(OPENED) == 1 and kinds.count(CLOSED) == 1
    assert scene.ids() == {event_id(CAM, "e1", 1)}
    opened, closed = scene.changes[0], scene.changes[-1]
    assert opened.new_best and opened.event.started_at == wall(0.0)
    assert opened.event.last_seen_at == wall(0.2)
    assert closed.event.ended_at == closed.event.last_seen_at == wall(11.9)
    assert closed.event.score == pytest.approx(0.6 + 0.02 * 11.9, abs=0.06)
    assert closed.event.hits == 120
    assert 2 <= len(closed.event.path) <= 64
    xs = [x for x, _ in closed.event.path]
    assert xs == sorted(xs) and xs[0] == pytest.approx(58.0)


def test_parked_car_with_gaps_is_one_event() -> None:
    scene = Scene()
    scene.run(0.0, 10.0, parked_car)
    scene.run(10.0, 30.0, nothing)  # gone long enough to close
    scene.run(30.0, 40.0, parked_car)
    scene.run(40.0, 41.0, nothing)  # a short gap the tracker bridges
    scene.run(41.0, 50.0, parked_car)
    assert scene.kinds().count(OPENED) == 1
    assert scene.kinds().count(CLOSED) == 1
    assert len(scene.ids()) == 1
    reopened = next(c for c in scene.changes if c.kind == UPDATED and c.event.hits > 100)
    assert reopened.event.ended_at is None
    assert scene.builder.open_events[0].started_at == wall(0.0)


@pytest.mark.parametrize(
    ("gap_s", "same_event"),
    [(60.0, True), (300.0, True), (590.0, True), (620.0, False)],
)
def test_stationary_rejoin_after_a_long_gap(gap_s: float, same_event: bool) -> None:
    scene = Scene()
    scene.run(0.0, 5.0, parked_car)
    scene.run(5.0, 11.0, nothing)
    assert scene.kinds()[-1] == CLOSED  # closed at ~10.1 s
    back = 10.1 + gap_s
    scene.run(back, back + 1.0, parked_car, fps=5.0)
    assert scene.kinds().count(OPENED) == (1 if same_event else 2)
    assert len(scene.ids()) == (1 if same_event else 2)


@pytest.mark.parametrize(
    ("gap_s", "same_event"),
    [(0.5, True), (2.5, True), (4.0, False)],
)
def test_moving_object_rejoins_only_within_rejoin_s(gap_s: float, same_event: bool) -> None:
    def walk_then_stand(ts: float) -> list[Detection]:
        return [det(100 + 30 * min(ts, 3.0), 300)]

    scene = Scene()
    scene.run(0.0, 5.0, walk_then_stand)  # walked 90 px: not stationary
    scene.run(5.0, 11.0, nothing)
    assert scene.kinds()[-1] == CLOSED
    back = 10.0 + gap_s
    scene.run(back, back + 1.0, walk_then_stand)
    assert scene.kinds().count(OPENED) == (1 if same_event else 2)
    if same_event:
        reopened = scene.changes[-1]
        assert reopened.kind == UPDATED and reopened.event.ended_at is None


def test_walker_who_stops_behind_an_obstacle_keeps_the_event() -> None:
    # A walker vanishes; its lost track's prediction runs on, so the walker, seen again where
    # it vanished, gets a new track, which must continue the still-open event.
    scene = Scene()
    scene.run(0.0, 2.0, lambda ts: [det(100 + 150 * ts, 300)])
    scene.run(2.0, 2.5, nothing)
    scene.run(2.5, 5.0, lambda ts: [det(100 + 150 * 1.9, 300)])
    assert [tr.id for tr in scene.tracker.active if not tr.lost] == [2]
    assert scene.kinds().count(OPENED) == 1
    assert scene.ids() == {event_id(CAM, "e1", 1)}
    (state,) = scene.builder.open_events
    assert state.track_id == 1 and state.last_seen_at == wall(4.9)
    # The old track's removal must not close the event the new track carries.
    scene.run(5.0, 8.0, lambda ts: [det(100 + 150 * 1.9, 300)])
    assert CLOSED not in scene.kinds()


def test_adopt_after_restart_keeps_the_event_id() -> None:
    before = Scene(epoch="first")
    before.run(0.0, 20.0, parked_car)
    (stored,) = before.builder.open_events  # what the store holds when the actor dies

    after = Scene(epoch="second")
    after.builder.adopt([stored], wall(21.0))
    assert [e.id for e in after.builder.open_events] == [stored.id]
    after.run(21.0, 30.0, parked_car)
    assert OPENED not in after.kinds()
    assert after.ids() == {stored.id}
    assert after.changes[0].kind == UPDATED
    assert after.changes[0].event.started_at == stored.started_at
    assert after.changes[0].event.hits == stored.hits + 3


def test_adopt_without_a_match_closes_after_close_after_s() -> None:
    before = Scene(epoch="first")
    before.run(0.0, 5.0, parked_car)
    (stored,) = before.builder.open_events

    after = Scene(epoch="second")
    after.builder.adopt([stored], wall(6.0))
    after.run(6.0, 10.9, lambda ts: [det(100, 100)])  # someone else, elsewhere
    assert CLOSED not in after.kinds()
    after.run(10.9, 11.5, lambda ts: [det(100, 100)])
    closed = [c for c in after.changes if c.kind == CLOSED]
    assert [c.event.id for c in closed] == [stored.id]
    assert closed[0].event.ended_at == stored.last_seen_at == wall(4.9)
    assert after.kinds().count(OPENED) == 1  # the other person


def test_adopt_ignores_other_cameras_ended_and_known_events() -> None:
    before = Scene()
    before.run(0.0, 1.0, parked_car)
    (stored,) = before.builder.open_events
    other = replace(stored, id="x", camera_id="cam-2")
    ended = replace(stored, id="y", ended_at=wall(0.5))
    builder = EventBuilder(CAM, "e2", EventConfig())
    builder.adopt([stored, other, ended, stored], wall(2.0))
    assert [e.id for e in builder.open_events] == [stored.id]


def test_update_throttling() -> None:
    scene = Scene(EventConfig(update_every_s=5.0))
    scene.run(0.0, 21.0, lambda ts: [det(300, 300, score=0.7)])
    updates = [c for c in scene.changes if c.kind == UPDATED]
    assert [c.event.last_seen_at for c in updates] == [
        wall(5.2),
        wall(10.2),
        wall(15.2),
        wall(20.2),
    ]
    assert not any(c.new_best for c in updates)


@pytest.mark.parametrize(
    ("new_score", "emitted_at_3s", "periodic_new_best", "best_at"),
    [
        (0.76, True, [], 3.0),  # +0.06: a new best right away (and the periodic clock restarts)
        (0.73, False, [True], 5.2),  # +0.03: waits for the periodic update, which carries it
        (0.69, False, [False], 0.2),  # not better
    ],
)
def test_new_best(
    new_score: float, emitted_at_3s: bool, periodic_new_best: list[bool], best_at: float
) -> None:
    scene = Scene()
    scene.run(0.0, 3.0, lambda ts: [det(300, 300, score=0.7)])
    changes = scene.step([det(300, 300, score=new_score)], 3.0)
    assert bool(changes) is emitted_at_3s
    assert all(c.new_best for c in changes)
    scene.run(3.1, 5.5, lambda ts: [det(300, 300, score=new_score)])
    (state,) = scene.builder.open_events
    assert state.best_at == wall(best_at)
    assert state.score == pytest.approx(max(new_score, 0.7))
    periodic = [c for c in scene.changes if c.event.last_seen_at == wall(5.2)]
    assert [c.new_best for c in periodic] == periodic_new_best


def test_path_is_subsampled() -> None:
    scene = Scene(EventConfig(path_points=8))
    scene.run(0.0, 30.0, lambda ts: [det(50 + 10 * ts, 300)])
    (state,) = scene.builder.open_events
    assert 4 <= len(state.path) <= 8
    xs = [x for x, _ in state.path]
    assert xs == sorted(xs) and xs[0] == pytest.approx(50.0 + 2.0)


def test_changes_are_snapshots() -> None:
    scene = Scene()
    scene.run(0.0, 1.0, parked_car)
    opened = scene.changes[0]
    scene.run(1.0, 6.0, parked_car)
    assert opened.event.hits == 3 and len(opened.event.path) == 1


def test_close_all_closes_open_and_adopted_events() -> None:
    scene = Scene()
    scene.run(0.0, 1.0, parked_car)
    adopted = EventState(
        id="old", camera_id=CAM, label="person", track_id=9, started_at=wall(-60.0),
        last_seen_at=wall(-1.0), score=0.8, box=det(50, 50).box, best_at=wall(-30.0),
    )  # fmt: skip
    scene.builder.adopt([adopted], wall(1.0))
    changes = scene.builder.close_all(wall(1.5))
    assert {(c.kind, c.event.id, c.event.ended_at) for c in changes} == {
        (CLOSED, event_id(CAM, "e1", 1), wall(0.9)),
        (CLOSED, "old", wall(-1.0)),
    }
    assert scene.builder.open_events == []
    assert scene.builder.close_all(wall(2.0)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"close_after_s": -1.0}, "close_after_s must be"),
        ({"rejoin_iou": 0.0}, "rejoin_iou must be"),
        ({"path_points": 1}, "path_points must be"),
        ({"update_every_s": -1.0}, "update_every_s and best_improvement"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventConfig(**kwargs)  # type: ignore[arg-type]
