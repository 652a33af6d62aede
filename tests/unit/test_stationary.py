"""Stationary objects: a parked car or a person standing still stops forcing a detector call on
every frame, keeps its event open, is re-checked on motion in its box or every ``recheck_s``,
and wakes up as soon as it moves.

The scenes are simulated the way :class:`CameraRunner` drives the pipeline: each frame the
gate decides on a 96x72 gray image (objects drawn at 1/8 scale over sensor noise), then a fake
detector reports the objects present in the full 768x576 frame, or the frame is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.config import CameraConfig
from sentinel.domain.events import EventConfig
from sentinel.domain.motion import MotionConfig
from sentinel.domain.pipeline import FramePipeline, PipelineConfig
from sentinel.domain.scene import SceneEventKind
from sentinel.domain.tracking import StationaryConfig, Tracker, TrackerConfig
from sentinel.domain.types import Box, Detection, EventChange, EventChangeKind
from sentinel.domain.zones import Zone
from tests.utils.factories import box_at, wall

CAM = "cam-1"
SIZE = (768, 576)
SCALE = 8  # full frame to gray pixels
FPS = 5.0
CAR = (600.0, 120.0, 160.0, 90.0)  # cx, cy, w, h: the parked van


@dataclass(frozen=True)
class Thing:
    """An object of the scene: where it is (centre) at a stream time, None when absent."""

    label: str
    w: float
    h: float
    where: Callable[[float], tuple[float, float] | None]
    shade: int = 200
    visible: bool = True  # drawn in the gray image (False: only the detector sees it)

    def box(self, ts: float) -> Box | None:
        at = self.where(ts)
        return None if at is None else box_at(at[0], at[1], self.w, self.h)


def parked(until: float = float("inf"), since: float = float("-inf")) -> Thing:
    cx, cy, w, h = CAR
    return Thing("car", w, h, lambda ts: (cx, cy) if since <= ts < until else None, shade=230)


def walker(t0: float, x0: float, y: float, speed: float, t1: float = float("inf")) -> Thing:
    """A person who appears at ``t0`` at ``x0`` and walks right at ``speed`` px/s until ``t1``."""

    def where(ts: float) -> tuple[float, float] | None:
        if not t0 <= ts < t1:
            return None
        return (x0 + speed * (ts - t0), y)

    return Thing("person", 40.0, 100.0, where, shade=40)


@dataclass
class Run:
    decisions: list[tuple[float, bool, str]] = field(default_factory=list)
    changes: list[EventChange] = field(default_factory=list)
    closed_ts: list[float] = field(default_factory=list)  # frames that closed an event
    stationary: list[tuple[float, bool]] = field(default_factory=list)  # first track's flag
    scene: list[tuple[float, SceneEventKind]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(detect for _, detect, _ in self.decisions)

    def calls_between(self, t0: float, t1: float) -> int:
        return sum(detect for ts, detect, _ in self.decisions if t0 <= ts < t1)

    def kinds(self, label: str) -> list[EventChangeKind]:
        return [
            c.kind
            for c in self.changes
            if c.event.label == label and c.kind is not EventChangeKind.UPDATED
        ]

    def event_ids(self, label: str) -> set[str]:
        return {c.event.id for c in self.changes if c.event.label == label}

    def first_detect_after(self, t: float) -> float:
        return min(ts for ts, detect, _ in self.decisions if detect and ts >= t)


def render(things: list[Thing], ts: float, rng: np.random.Generator) -> NDArray[np.uint8]:
    image = np.full((SIZE[1] // SCALE, SIZE[0] // SCALE), 110.0)
    for thing in things:
        box = thing.box(ts)
        if box is None or not thing.visible:
            continue
        x1, y1 = int(box.x1 / SCALE), int(box.y1 / SCALE)
        x2, y2 = int(np.ceil(box.x2 / SCALE)), int(np.ceil(box.y2 / SCALE))
        image[max(y1, 0) : y2, max(x1, 0) : x2] = thing.shade
    image += rng.normal(0.0, 3.0, image.shape)  # sensor noise
    out: NDArray[np.uint8] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def simulate(pipeline: FramePipeline, things: list[Thing], seconds: float, seed: int = 0) -> Run:
    """Drives ``pipeline`` like the camera loop; the fake detector jitters boxes by ~1 px."""
    rng = np.random.default_rng(seed)
    rgb = np.zeros((SIZE[1], SIZE[0], 3), np.uint8) if pipeline.config.needs_frame else None
    run = Run()
    for i in range(round(seconds * FPS)):
        ts = round(i / FPS, 6)
        decision = pipeline.wants_detection(render(things, ts, rng), ts, SIZE)
        run.decisions.append((ts, decision.detect, decision.reason))
        before = len(run.changes)
        if decision.detect:
            detections = []
            for thing in things:
                box = thing.box(ts)
                if box is not None:
                    dx, dy = rng.normal(0.0, 1.0, 2)
                    detections.append(Detection(box.shifted(dx, dy), thing.label, 0.85))
            run.changes += pipeline.on_detections(detections, ts, wall(ts), rgb)
        else:
            run.changes += pipeline.on_skipped(ts, wall(ts))
        if any(c.kind is EventChangeKind.CLOSED for c in run.changes[before:]):
            run.closed_ts.append(ts)
        run.scene += [(ts, e.kind) for e in pipeline.scene_events]
        tracks = pipeline.active_tracks()
        run.stationary.append((ts, bool(tracks) and tracks[0].stationary))
    return run


def make_pipeline(zones: tuple[Zone, ...] = (), **stationary: float) -> FramePipeline:
    config = PipelineConfig(
        zones=zones,
        motion=MotionConfig(max_idle_s=10.0),
        tracker=TrackerConfig(stationary=StationaryConfig(**stationary)),  # type: ignore[arg-type]
        events=EventConfig(close_after_s=5.0),
    )
    return FramePipeline(CAM, "e1", config)


def test_parked_car_for_ten_minutes_is_one_event_and_few_calls() -> None:
    pipeline = make_pipeline(after_s=10.0, recheck_s=20.0)
    run = simulate(pipeline, [parked()], 600.0)
    assert len(run.decisions) == 3000
    assert run.kinds("car") == [EventChangeKind.OPENED]  # never closed, never split
    assert len(run.event_ids("car")) == 1
    # ~13 s to confirm and settle, then a re-check every 20 s: 65 + 30 calls of 3000 frames.
    assert run.calls <= 110, run.calls
    assert run.calls_between(60.0, 600.0) <= 30
    reasons = {r for _, _, r in run.decisions}
    assert {"stationary", "recheck"} <= reasons
    assert "touched" not in reasons  # noise alone never touches the car
    # The event is refreshed at each re-check: last seen within a re-check of the end.
    (track,) = pipeline.active_tracks()
    assert track.stationary and 600.0 - track.last_t <= 20.0
    assert pipeline.has_open_events


def test_a_held_object_stays_in_view_for_the_zones() -> None:
    kerb = Zone("kerb", ((0.6, 0.0), (1.0, 0.0), (1.0, 0.5), (0.6, 0.5)), inertia=1)
    run = simulate(make_pipeline(zones=(kerb,), after_s=5.0, recheck_s=20.0), [parked()], 60.0)
    held = {ts for ts, _, reason in run.decisions if reason == "stationary"}
    assert len(held) > 200
    # Every held frame still reports the car in view and dwelling in its zone, as if detected.
    for kind in (SceneEventKind.SEEN, SceneEventKind.DWELL):
        assert held <= {ts for ts, k in run.scene if k is kind}
    assert [k for _, k in run.scene].count(SceneEventKind.ENTER) == 1
    assert SceneEventKind.EXIT not in {k for _, k in run.scene}


def test_without_stationary_objects_every_frame_goes_to_the_detector() -> None:
    run = simulate(make_pipeline(enabled=False), [parked()], 60.0)
    assert run.calls == len(run.decisions)
    assert run.kinds("car") == [EventChangeKind.OPENED]


@pytest.mark.parametrize(
    ("name", "things", "seconds", "check"),
    [
        (
            "person walks in while the car is parked",
            [parked(), walker(t0=40.0, x0=100.0, y=400.0, speed=60.0, t1=50.0)],
            70.0,
            "walker",
        ),
        (
            "person walks past the parked car, over its box",
            [parked(), walker(t0=40.0, x0=420.0, y=120.0, speed=60.0, t1=48.0)],
            70.0,
            "walker",
        ),
    ],
)
def test_detection_resumes_at_once_when_someone_comes(
    name: str, things: list[Thing], seconds: float, check: str
) -> None:
    run = simulate(make_pipeline(after_s=10.0, recheck_s=20.0), things, seconds)
    assert run.calls_between(25.0, 40.0) <= 2, name  # resting before the walker
    assert run.first_detect_after(40.0) == 40.0, name  # the walker's first frame
    assert run.calls_between(40.0, 48.0) == 40, name  # every frame while someone moves
    assert run.kinds("person")[:1] == [EventChangeKind.OPENED], name
    assert len(run.event_ids("person")) == 1, name
    assert run.kinds("car") == [EventChangeKind.OPENED], name  # the car's event goes on
    assert len(run.event_ids("car")) == 1, name
    assert run.calls_between(60.0, 70.0) <= 2, name  # resting again once the walker left


def test_a_person_standing_still_rests_then_wakes_when_walking_away() -> None:
    def where(ts: float) -> tuple[float, float]:
        return (300.0, 300.0) if ts < 30.0 else (300.0 + 40.0 * (ts - 30.0), 300.0)

    person = Thing("person", 40.0, 100.0, where, shade=40)
    pipeline = make_pipeline(after_s=10.0, recheck_s=20.0)
    run = simulate(pipeline, [person], 40.0)
    flags = dict(run.stationary)
    assert not flags[5.0] and flags[15.0] and flags[29.8]
    assert run.calls_between(15.0, 30.0) <= 2  # resting
    woke = min(ts for ts, still in run.stationary if ts >= 30.0 and not still)
    assert woke <= 30.6  # the first frames after the first step
    assert run.calls_between(31.0, 40.0) == 45  # moving: every frame
    assert len(run.event_ids("person")) == 1
    assert run.kinds("person") == [EventChangeKind.OPENED]
    assert {r for ts, _, r in run.decisions if 30.0 <= ts < 31.0} & {"touched", "tracking"}


@pytest.mark.parametrize(
    ("visible", "reason", "closed_by"),
    [
        # Driven away in view: motion touches its box, the next call misses it, it closes
        # close_after_s later.
        (True, "touched", 50.0 + 5.0 + 1.0),
        # Gone without motion the gate sees (e.g. a lighting change hid it): found missing at
        # the next re-check (every 20 s), closed close_after_s after that.
        (False, "recheck", 50.0 + 20.0 + 5.0 + 1.0),
    ],
)
def test_a_removed_stationary_object_closes_after_the_check(
    visible: bool, reason: str, closed_by: float
) -> None:
    cx, cy, w, h = CAR
    car = Thing("car", w, h, lambda ts: (cx, cy) if ts < 50.0 else None, shade=230, visible=visible)
    pipeline = make_pipeline(after_s=10.0, recheck_s=20.0)
    run = simulate(pipeline, [car], 90.0)
    (closing,) = [c for c in run.changes if c.kind is EventChangeKind.CLOSED]
    assert closing.event.ended_at == closing.event.last_seen_at  # when last seen
    assert closing.event.ended_at is not None and closing.event.ended_at < wall(50.0)
    check = run.first_detect_after(50.0)
    assert dict((ts, r) for ts, _, r in run.decisions)[check] == reason
    # The check misses it: detection is forced until the track is removed.
    assert run.calls_between(check, check + 5.0) == 25
    assert run.closed_ts == [pytest.approx(check + 5.2, abs=0.25)]
    assert check + 5.0 < closed_by
    assert pipeline.active_tracks() == []
    assert len(run.event_ids("car")) == 1


@pytest.mark.parametrize(
    ("box", "settled", "still"),
    [
        (box_at(100, 100), box_at(100, 100), True),
        (box_at(103, 102), box_at(100, 100), True),  # detector jitter
        (box_at(110, 100), box_at(100, 100), False),  # 10 px on a 40 px wide box: walked
        (box_at(100, 100, 40, 60), box_at(100, 100), False),  # half hidden or sat down
        (box_at(100, 140), box_at(100, 100), False),
    ],
)
def test_still_compares_with_the_settled_box(box: Box, settled: Box, still: bool) -> None:
    assert StationaryConfig().still(box, settled) is still


def test_tracker_settles_holds_and_wakes() -> None:
    tracker = Tracker(TrackerConfig(max_lost_s=2.0, stationary=StationaryConfig(after_s=3.0)))
    car = Detection(box_at(300, 200, 120, 80), "car", 0.9)
    for i in range(20):  # 4 s at 5 fps
        tracker.update([car], i / 5)
    (track,) = tracker.active
    assert track.stationary and track.last_t == pytest.approx(3.8)
    # Held on skipped frames: never aged out however long it rests.
    for t in range(4, 100):
        assert tracker.hold(float(t)) == [track]
        assert tracker.age_out(float(t)) == []
    # A re-check that misses it: lost, not held any more, removed max_lost_s after it was
    # last vouched for (held at 99 s).
    tracker.update([], 100.0)
    assert track.lost and tracker.hold(100.2) == []
    assert tracker.age_out(100.9) == []
    assert tracker.age_out(101.1) == [track]


def test_a_moved_match_wakes_the_track_at_once() -> None:
    tracker = Tracker(TrackerConfig(stationary=StationaryConfig(after_s=2.0)))
    for i in range(15):
        tracker.update([Detection(box_at(300, 200), "person", 0.9)], i / 5)
    (track,) = tracker.active
    assert track.stationary
    tracker.update([Detection(box_at(312, 200), "person", 0.9)], 3.0)
    assert not track.stationary and track.settled == box_at(312, 200)
    assert tracker.active == [track]  # the same track, so the same event


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"after_s": -1}, "after_s"),
        ({"min_iou": 0}, "min_iou"),
        ({"recheck_s": 0}, "recheck_s"),
        ({"touch_pixels": 0}, "touch_pixels"),
        ({"margin": -0.1}, "margin"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_camera_settings_are_validated(settings: dict[str, float], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        CameraConfig(id="c1", source="/x.mp4", stationary=settings)


def test_camera_settings_reach_the_tracker() -> None:
    camera = CameraConfig(
        id="c1", source="/x.mp4", stationary={"after_s": 30, "recheck_s": 15, "enabled": False}
    )
    stationary = camera.pipeline_config().tracker.stationary
    assert (stationary.after_s, stationary.recheck_s, stationary.enabled) == (30.0, 15.0, False)
    assert CameraConfig(id="c2", source="/x.mp4").pipeline_config().tracker.stationary == (
        StationaryConfig()
    )


@pytest.mark.parametrize(
    "field_name, value",
    [("after_s", -1.0), ("min_iou", 1.5), ("max_shift", -0.1), ("recheck_s", 0.0)],
)
def test_stationary_config_is_validated(field_name: str, value: float) -> None:
    with pytest.raises(ValueError, match=field_name):
        StationaryConfig(**{field_name: value})  # type: ignore[arg-type]
