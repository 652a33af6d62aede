from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.domain.events import EventConfig
from sentinel.domain.motion import MotionConfig
from sentinel.domain.pipeline import FramePipeline, PipelineConfig
from sentinel.domain.tracking import TrackerConfig
from sentinel.domain.types import Box, Detection, EventChange, EventChangeKind, event_id
from tests.utils.factories import det, gray, gray_with_square, wall

CAM = "cam-1"


def feed(
    pipeline: FramePipeline, detections: Sequence[Detection], start: float, stop: float
) -> list[EventChange]:
    changes: list[EventChange] = []
    for i in range(round((stop - start) * 10)):
        ts = round(start + i / 10, 6)
        changes += pipeline.on_detections(detections, ts, wall(ts))
    return changes


def test_replayed_frames_are_ignored() -> None:
    pipeline = FramePipeline(CAM, "e1", PipelineConfig())
    person = [det(100, 200)]
    changes = feed(pipeline, person, 0.0, 0.3)
    assert [c.kind for c in changes] == [EventChangeKind.OPENED]
    hits = pipeline.active_tracks()[0].hits
    # The same frames again (e.g. redelivered after a retry), then one from the past.
    assert feed(pipeline, person, 0.0, 0.3) == []
    assert pipeline.on_detections(person, 0.1, wall(0.1)) == []
    assert pipeline.on_skipped(0.2, wall(0.2)) == []
    assert pipeline.active_tracks()[0].hits == hits
    assert pipeline.on_detections(person, 0.3, wall(0.3)) == []  # new frame, nothing due
    assert pipeline.active_tracks()[0].hits == hits + 1


def test_same_epoch_and_frames_give_the_same_changes() -> None:
    runs = []
    for _ in range(2):
        pipeline = FramePipeline(CAM, "epoch-7", PipelineConfig())
        runs.append(feed(pipeline, [det(100, 200), det(400, 200, "car")], 0.0, 6.0))
    assert runs[0] == runs[1]
    assert {c.event.id for c in runs[0]} == {
        event_id(CAM, "epoch-7", 1),
        event_id(CAM, "epoch-7", 2),
    }


@pytest.mark.parametrize(
    ("labels", "min_score", "detections", "tracked"),
    [
        (None, 0.15, [det(100, 200, "person"), det(400, 200, "dog")], ["dog", "person"]),
        (frozenset({"person"}), 0.15, [det(100, 200, "person"), det(400, 200, "dog")],
         ["person"]),
        (frozenset({"car"}), 0.15, [det(100, 200, "person")], []),
        (None, 0.7, [det(100, 200, score=0.65), det(400, 200, score=0.75)], ["person"]),
    ],
)  # fmt: skip
def test_filters_before_tracking(
    labels: frozenset[str] | None,
    min_score: float,
    detections: list[Detection],
    tracked: list[str],
) -> None:
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(labels=labels, min_score=min_score))
    changes = feed(pipeline, detections, 0.0, 0.5)
    assert sorted(c.event.label for c in changes if c.kind == EventChangeKind.OPENED) == tracked
    assert sorted(tr.label for tr in pipeline.active_tracks()) == tracked


def test_tracker_keeps_tracks_for_close_after_s() -> None:
    config = PipelineConfig(
        tracker=TrackerConfig(max_lost_s=1.0), events=EventConfig(close_after_s=4.0)
    )
    pipeline = FramePipeline(CAM, "e1", config)
    feed(pipeline, [det(100, 200)], 0.0, 1.0)
    assert feed(pipeline, [], 1.0, 4.5) == []  # lost for 3.6 s: longer than the tracker's 1 s
    assert pipeline.tracking
    closed = feed(pipeline, [], 4.5, 5.5)
    assert [c.kind for c in closed] == [EventChangeKind.CLOSED]
    assert not pipeline.tracking


def test_motion_gate_follows_tracking() -> None:
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(motion=MotionConfig(max_idle_s=60.0)))
    assert pipeline.wants_detection(gray(), 0.0).reason == "first frame"
    assert not pipeline.wants_detection(gray(), 0.1).detect
    moving = pipeline.wants_detection(gray_with_square(40, 30), 0.2)
    assert (moving.detect, moving.reason) == (True, "motion")
    pipeline.on_detections([det(100, 200)], 0.2, wall(0.2))
    assert pipeline.tracking
    forced = pipeline.wants_detection(gray(), 0.3)
    assert (forced.detect, forced.reason) == (True, "tracking")


def test_skipped_frames_age_out_and_close() -> None:
    pipeline = FramePipeline(CAM, "e1", PipelineConfig())
    feed(pipeline, [det(100, 200)], 0.0, 0.5)
    assert pipeline.on_skipped(5.3, wall(5.3)) == []
    (closed,) = pipeline.on_skipped(5.5, wall(5.5))
    assert closed.kind == EventChangeKind.CLOSED
    assert closed.event.ended_at == wall(0.4)
    assert pipeline.active_tracks() == []


def test_adopt_and_close_all() -> None:
    before = FramePipeline(CAM, "first", PipelineConfig())
    feed(before, [det(600, 400, "car", 0.8, 200, 120)], 0.0, 3.0)
    stored = before.open_events()

    after = FramePipeline(CAM, "second", PipelineConfig())
    after.adopt(stored, wall(4.0))
    changes = feed(after, [det(602, 401, "car", 0.8, 200, 120)], 4.0, 5.0)
    assert [(c.kind, c.event.id) for c in changes] == [(EventChangeKind.UPDATED, stored[0].id)]
    (closed,) = after.close_all(wall(5.0))
    assert (closed.kind, closed.event.id, closed.event.ended_at) == (
        EventChangeKind.CLOSED,
        stored[0].id,
        wall(4.9),
    )
    assert after.open_events() == []


@pytest.mark.parametrize("method", ["on_detections", "on_skipped", "adopt", "close_all"])
def test_naive_wall_time_is_rejected(method: str) -> None:
    pipeline = FramePipeline(CAM, "e1", PipelineConfig())
    naive = datetime(2024, 5, 1, 12, 0, 0)
    calls: dict[str, Callable[[], object]] = {
        "on_detections": lambda: pipeline.on_detections([], 0.0, naive),
        "on_skipped": lambda: pipeline.on_skipped(0.0, naive),
        "adopt": lambda: pipeline.adopt([], naive),
        "close_all": lambda: pipeline.close_all(naive),
    }
    with pytest.raises(ValueError, match="timezone-aware"):
        calls[method]()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="min_score must be in"):
        PipelineConfig(min_score=1.5)


def test_has_open_events_matches_open_events() -> None:
    pipe = FramePipeline("cam", "e")
    t0 = datetime(2026, 11, 26, tzinfo=UTC)
    assert not pipe.has_open_events and pipe.open_events() == []
    person = Detection(Box(10, 10, 50, 120), "person", 0.9)
    for i in range(5):
        pipe.on_detections([person], float(i), t0 + timedelta(seconds=i))
    assert pipe.has_open_events and len(pipe.open_events()) == 1
    pipe.close_all(t0 + timedelta(seconds=10))
    assert not pipe.has_open_events


def rgb_with_person(cx: float, cy: float, top: tuple[int, int, int]) -> NDArray[np.uint8]:
    """A grey 576x768 RGB frame with a 40x100 person (``top`` over dark blue) at (cx, cy)."""
    frame = np.full((576, 768, 3), 128, dtype=np.uint8)
    x1, y1 = round(cx - 20), round(cy - 50)
    frame[y1 : y1 + 50, x1 : x1 + 40] = top
    frame[y1 + 50 : y1 + 100, x1 : x1 + 40] = (20, 30, 120)
    return frame


@pytest.mark.parametrize(
    ("with_frames", "reappears_as", "events"),
    [
        (True, (200, 30, 30), 1),  # the same red coat: the lost track is re-associated
        (True, (30, 170, 40), 2),  # a green coat there: someone else, a second event
        (False, (200, 30, 30), 2),  # no frames, no descriptors: the old behaviour
    ],
)
def test_frames_let_a_hidden_walker_keep_its_event(
    with_frames: bool, reappears_as: tuple[int, int, int], events: int
) -> None:
    pipeline = FramePipeline(CAM, "e1", PipelineConfig())
    changes: list[EventChange] = []
    for i in range(20):  # 5 frames a second; walks right at 100 px/s, hidden from 1.2 to 3 s
        ts = round(i * 0.2, 6)
        x = 100 + 100 * ts
        hidden = 1.2 <= ts < 3.0
        colour = (200, 30, 30) if ts < 3.0 else reappears_as
        frame = rgb_with_person(x, 200, colour) if with_frames else None
        detections = [] if hidden else [det(x, 200)]
        changes += pipeline.on_detections(detections, ts, wall(ts), frame)
    opened = [c for c in changes if c.kind is EventChangeKind.OPENED]
    assert len(opened) == events
