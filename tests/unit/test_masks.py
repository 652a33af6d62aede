"""Motion masks, object masks and the zone tracker as the frame pipeline runs them."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.domain.masks import ObjectMask, rasterise
from sentinel.domain.motion import MotionConfig, MotionGate
from sentinel.domain.pipeline import FramePipeline, PipelineConfig
from sentinel.domain.scene import CrossDirection, Point, SceneEventKind
from sentinel.domain.types import Box, Detection, EventChangeKind
from sentinel.domain.zones import Line, Zone
from tests.utils.factories import det, gray, gray_with_square, wall

CAM = "cam-1"
SIZE = (800, 600)  # frame (width, height) for the pipeline tests
FRAME = np.zeros((SIZE[1], SIZE[0], 3), dtype=np.uint8)
LEFT_HALF: tuple[Point, ...] = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))


@pytest.mark.parametrize(
    ("polygons", "width", "height", "masked"),
    [
        ([], 4, 2, 0),
        ([LEFT_HALF], 4, 2, 4),  # the two left columns of both rows
        ([LEFT_HALF, ((0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5))], 4, 2, 6),
        ([((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))], 96, 72, 96 * 72),
        # A triangle over the top-left half of a 100x100 grid: the pixels whose centre has
        # x + y < 0.995, i.e. column + row <= 98 (no centre lies on the hypotenuse).
        ([((0.0, 0.0), (0.995, 0.0), (0.0, 0.995))], 100, 100, 4950),
    ],
)
def test_rasterise(polygons: list[tuple[Point, ...]], width: int, height: int, masked: int) -> None:
    image = rasterise(polygons, width, height)
    assert image.shape == (height, width) and image.dtype == bool
    assert int(np.count_nonzero(image)) == masked


def test_rasterise_marks_the_right_pixels() -> None:
    image = rasterise([LEFT_HALF], 4, 2)
    assert image.tolist() == [[True, True, False, False], [True, True, False, False]]


# Gate frames are 96x72; gray_with_square(x, y) puts a 12 px square at (x, y).
@pytest.mark.parametrize(
    ("square_x", "masks", "detect"),
    [
        (5, (), True),  # motion on the left, no mask
        (5, (LEFT_HALF,), False),  # the same motion under a mask is ignored
        (70, (LEFT_HALF,), True),  # motion outside the mask still counts
    ],
)
def test_motion_masks_hide_motion(
    square_x: int, masks: tuple[tuple[Point, ...], ...], detect: bool
) -> None:
    gate = MotionGate(MotionConfig(masks=masks, max_idle_s=60.0))
    gate.check(gray(), 0.0, tracking=False)
    decision = gate.check(gray_with_square(square_x, 30), 0.2, tracking=False)
    assert decision.detect is detect
    assert (decision.motion > 0.0) is detect


def test_motion_fraction_is_of_the_unmasked_pixels() -> None:
    plain = MotionGate(MotionConfig(max_idle_s=60.0))
    masked = MotionGate(MotionConfig(masks=(LEFT_HALF,), max_idle_s=60.0))
    for gate in (plain, masked):
        gate.check(gray(), 0.0, tracking=False)
    moved = gray_with_square(70, 30)
    assert masked.check(moved, 0.2, tracking=False).motion == pytest.approx(
        2 * plain.check(moved, 0.2, tracking=False).motion
    )


def test_a_fully_masked_frame_never_moves() -> None:
    frame_mask = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    gate = MotionGate(MotionConfig(masks=(frame_mask,), max_idle_s=60.0))
    gate.check(gray(), 0.0, tracking=False)
    assert gate.check(gray_with_square(40, 30), 0.2, tracking=False).motion == 0.0


def test_motion_mask_follows_frame_size() -> None:
    gate = MotionGate(MotionConfig(masks=(LEFT_HALF,), max_idle_s=60.0))
    gate.check(gray(shape=(36, 48)), 0.0, tracking=False)
    gate.check(gray(), 0.2, tracking=False)  # reset to 96x72: a new mask image
    assert not gate.check(gray_with_square(5, 30), 0.4, tracking=False).detect


def test_bad_mask_polygons_are_refused() -> None:
    bow_tie = ((0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9))
    with pytest.raises(ValueError, match="motion mask: edges 0 and 2 cross"):
        MotionConfig(masks=(bow_tie,))
    with pytest.raises(ValueError, match=r"object mask: .*outside the frame"):
        ObjectMask(((0.1, 0.1), (1.1, 0.1), (0.5, 0.5)))


@pytest.mark.parametrize(
    ("mask", "detection", "hidden"),
    [
        # Feet in the left half (x 100..140 of 800, bottom at y 250 of 600).
        (ObjectMask(LEFT_HALF), det(120, 200), True),
        (ObjectMask(LEFT_HALF), det(600, 200), False),
        # A box straddling the edge counts where it stands: bottom centre at x = 390 → in.
        (ObjectMask(LEFT_HALF), det(390, 200, w=100), True),
        (ObjectMask(LEFT_HALF, frozenset({"car"})), det(120, 200), False),
        (ObjectMask(LEFT_HALF, frozenset({"car"})), det(120, 200, "car"), True),
    ],
)
def test_object_masks(mask: ObjectMask, detection: Detection, hidden: bool) -> None:
    assert mask.hides(detection.label, detection.box, *SIZE) is hidden
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(object_masks=(mask,)))
    changes = []
    for i in range(5):
        changes += pipeline.on_detections([detection], i * 0.2, wall(i * 0.2), FRAME)
    assert bool(pipeline.active_tracks()) is not hidden
    assert [c.kind for c in changes] == ([] if hidden else [EventChangeKind.OPENED])


@pytest.mark.parametrize(
    "config",
    [
        PipelineConfig(object_masks=(ObjectMask(LEFT_HALF),)),
        PipelineConfig(zones=(Zone("z", LEFT_HALF),)),
        PipelineConfig(lines=(Line("l", (0.0, 0.5), (1.0, 0.5)),)),
    ],
)
def test_masks_and_zones_need_the_frame(config: PipelineConfig) -> None:
    pipeline = FramePipeline(CAM, "e1", config)
    with pytest.raises(ValueError, match="the frame is needed"):
        pipeline.on_detections([det(120, 200)], 0.0, wall(0.0))
    assert pipeline.on_detections([det(120, 200)], 0.0, wall(0.0), FRAME) == []


def test_without_zones_only_seen_events() -> None:
    # Rules on "a person in view" need no zone: the confirmed track is SEEN on every frame.
    pipeline = FramePipeline(CAM, "e1", PipelineConfig())
    kinds = []
    for i in range(5):
        pipeline.on_detections([det(120, 200)], i * 0.2, wall(i * 0.2))
        kinds.append([e.kind for e in pipeline.scene_events])
    assert kinds == [[], [], [SceneEventKind.SEEN], [SceneEventKind.SEEN], [SceneEventKind.SEEN]]


def test_pipeline_reports_scene_events() -> None:
    """A walker goes right along y = 300 (feet at 350 px = 0.58) through a zone over the middle
    and across a vertical line at x = 0.75; the line runs down the screen, so "in" is its
    screen-right side."""
    zone = Zone("middle", ((0.3, 0.4), (0.6, 0.4), (0.6, 0.8), (0.3, 0.8)), inertia=2)
    line = Line("fence", (0.75, 0.2), (0.75, 0.9))
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(zones=(zone,), lines=(line,)))
    seen: list[tuple[float, SceneEventKind, str | None, float]] = []
    for i in range(30):
        ts = round(i * 0.2, 6)
        x = 100 + 100 * ts  # 100 px/s: in the zone (240..480 px) from 1.4 s to 3.8 s
        pipeline.on_detections([det(x, 300)], ts, wall(ts), FRAME)
        for e in pipeline.scene_events:
            if e.kind is not SceneEventKind.DWELL:
                seen.append((ts, e.kind, e.zone or e.line, e.dwell_s))
            assert e.event_id == pipeline.open_events()[0].id and e.track_id == 1
    kinds = [(ts, kind, where) for ts, kind, where, _ in seen if kind is not SceneEventKind.SEEN]
    assert kinds == [
        (1.6, SceneEventKind.ENTER, "middle"),  # inside from 1.4 s, inertia 2
        (4.2, SceneEventKind.EXIT, "middle"),  # outside from 4.0 s
        (5.2, SceneEventKind.CROSS, "fence"),  # on the line (600 px) at 5.0 s, over at 5.2 s
    ]
    exit_dwell = next(d for _, kind, _, d in seen if kind is SceneEventKind.EXIT)
    assert exit_dwell == pytest.approx(3.8 - 1.4)
    assert sum(kind is SceneEventKind.SEEN for _, kind, _, _ in seen) == 30 - 2  # confirmed at 0.4
    assert pipeline.zone_counts("middle") == {}


def test_events_record_the_zones_they_were_in() -> None:
    """The walker of the test above, through two zones: its event says where it went, written
    by a change on the frame it first is in each (an update, not waiting for the next one)."""
    middle = Zone("middle", ((0.3, 0.4), (0.6, 0.4), (0.6, 0.8), (0.3, 0.8)), inertia=2)
    right = Zone("right", ((0.7, 0.4), (1.0, 0.4), (1.0, 0.8), (0.7, 0.8)), inertia=1)
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(zones=(middle, right)))
    written: list[tuple[float, EventChangeKind, list[str]]] = []
    for i in range(30):
        ts = round(i * 0.2, 6)
        for change in pipeline.on_detections([det(100 + 100 * ts, 300)], ts, wall(ts), FRAME):
            written.append((ts, change.kind, change.event.zones))
    assert (1.6, EventChangeKind.UPDATED, ["middle"]) in written  # entered at 1.6 s
    assert (4.6, EventChangeKind.UPDATED, ["middle", "right"]) in written  # x = 560 px at 4.6 s
    assert written[0][2] == []  # opened before it was in a zone
    assert pipeline.open_events()[0].zones == ["middle", "right"]
    (closed,) = pipeline.close_all(wall(7.0))
    assert closed.event.zones == ["middle", "right"]


def test_scene_events_on_skipped_frames_and_close() -> None:
    zone = Zone("all", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), inertia=1)
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(zones=(zone,)))
    for i in range(5):
        pipeline.on_detections([det(120, 200)], i * 0.2, wall(i * 0.2), FRAME)
    assert pipeline.zone_counts("all") == {"person": 1}
    # A skipped frame sees nobody; the track is lost, not gone: no event, still a member.
    assert pipeline.on_skipped(1.0, wall(1.0)) == []
    assert not pipeline.scene_events
    assert pipeline.zone_counts("all") == {"person": 1}
    # A replay clears the frame's events.
    pipeline.on_detections([det(120, 200)], 0.4, wall(0.4), FRAME)
    assert not pipeline.scene_events
    (closed,) = pipeline.close_all(wall(2.0))
    (leave,) = pipeline.scene_events
    assert (leave.kind, leave.zone, leave.event_id) == (SceneEventKind.EXIT, "all", closed.event.id)
    assert leave.direction is None and leave.dwell_s == pytest.approx(0.4)  # 0.4 s to 0.8 s


def test_track_removal_exits_the_zone() -> None:
    zone = Zone("all", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), inertia=1)
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(zones=(zone,)))
    for i in range(5):
        pipeline.on_detections([det(120, 200)], i * 0.2, wall(i * 0.2), FRAME)
    changes = pipeline.on_skipped(10.0, wall(10.0))
    assert [c.kind for c in changes] == [EventChangeKind.CLOSED]
    assert [(e.kind, e.zone) for e in pipeline.scene_events] == [(SceneEventKind.EXIT, "all")]


def test_line_direction_in_the_pipeline() -> None:
    # Drawn left to right across the frame at y = 0.5: "in" is above (the walker goes up).
    line = Line("road", (0.0, 0.5), (1.0, 0.5), CrossDirection.IN)
    pipeline = FramePipeline(CAM, "e1", PipelineConfig(lines=(line,)))
    crossings = []
    for i in range(20):
        ts = round(i * 0.2, 6)
        person = Detection(Box(380, 450 - 40 * ts - 100, 420, 450 - 40 * ts), "person", 0.9)
        pipeline.on_detections([person], ts, wall(ts), FRAME)
        crossings += [e for e in pipeline.scene_events if e.kind is SceneEventKind.CROSS]
    assert [(c.line, c.direction) for c in crossings] == [("road", CrossDirection.IN)]
