"""Motion regions: planning, crops, mapping back and de-duplication across region borders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.config import CameraConfig
from sentinel.domain.regions import (
    Region,
    RegionConfig,
    RegionPlan,
    RegionPlanner,
    crops,
    full_frame_plan,
    merge_detections,
    plan_regions,
)
from sentinel.domain.types import Box, Detection

W, H = 768, 576  # PETS09 frame; the gate's mask is 96x72, so one mask pixel is 8x8 frame px
MASK_SHAPE = (72, 96)


@dataclass(frozen=True)
class FakeTrack:
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)


def mask_with(*rects: tuple[int, int, int, int], shape: tuple[int, int] = MASK_SHAPE) -> Any:
    """A mask with the (x1, y1, x2, y2) mask-pixel rectangles (end exclusive) set."""
    mask = np.zeros(shape, dtype=bool)
    for x1, y1, x2, y2 in rects:
        mask[y1:y2, x1:x2] = True
    return mask


def contains(region: Region, x1: float, y1: float, x2: float, y2: float) -> bool:
    return (
        region.x0 <= x1
        and region.y0 <= y1
        and x2 <= region.x0 + region.side
        and y2 <= region.y0 + region.side
    )


def inside_frame(region: Region, width: int = W, height: int = H) -> bool:
    return region.x0 + region.side <= width and region.y0 + region.side <= height


CFG = RegionConfig(input_sizes=(256,), max_regions=4)
# Merging two 128 regions into a 320 one costs more: only overlap merges them.
TWO_SIZES = RegionConfig(input_sizes=(128, 320), max_regions=4)


# --- planning -----------------------------------------------------------------------------

# (case, frame size, mask, tracks, config, full frame?, reason, region count)
PlanCase = tuple[str, tuple[int, int], Any, list[FakeTrack], RegionConfig, bool, str, int]
PLAN_CASES: list[PlanCase] = [
    ("nothing moves, nothing tracked", (W, H), mask_with(), [], CFG, False, "nothing to look at",
     0),
    ("blob below min_blob_px is noise", (W, H), mask_with((10, 10, 11, 11)), [], CFG, False,
     "nothing to look at", 0),
    ("one blob", (W, H), mask_with((40, 30, 44, 40)), [], CFG, False, "regions", 1),
    ("two far blobs", (W, H), mask_with((2, 2, 6, 12), (88, 58, 92, 68)), [], CFG, False,
     "regions", 2),
    ("two near blobs merge (cheaper)", (W, H), mask_with((40, 30, 42, 40), (50, 30, 52, 40)), [],
     CFG, False, "regions", 1),
    ("overlapping squares merge", (W, H), mask_with((13, 30, 27, 40), (23, 30, 37, 40)), [],
     TWO_SIZES, False, "regions", 1),
    ("barely overlapping squares stay apart", (W, H),
     mask_with((13, 30, 27, 40), (30, 30, 40, 40)), [], TWO_SIZES, False, "regions", 2),
    ("motion everywhere", (W, H), mask_with((0, 0, 96, 36)), [], CFG, True, "motion everywhere",
     0),
    ("no mask (first frame, reset)", (W, H), None, [], CFG, True, "no mask", 0),
    ("disabled", (W, H), mask_with((40, 30, 44, 40)), [], RegionConfig(enabled=False), True,
     "disabled", 0),
    ("frame smaller than a region", (200, 150), mask_with((5, 5, 8, 10), shape=(18, 24)), [],
     CFG, True, "too large", 0),
    ("more regions than max_regions", (W, H), mask_with((2, 2, 6, 12), (88, 58, 92, 68)), [],
     RegionConfig(input_sizes=(256,), max_regions=1), True, "too many regions", 0),
    ("regions not cheaper than the frame", (W, H), mask_with((40, 30, 44, 40)), [],
     RegionConfig(input_sizes=(256,), max_cost=0.1), True, "not cheaper", 0),
    ("a tracked object without motion", (W, H), mask_with(),
     [FakeTrack(Box(300, 200, 330, 280))], CFG, False, "regions", 1),
    ("motion on a tracked object: one region", (W, H), mask_with((38, 25, 41, 35)),
     [FakeTrack(Box(300, 200, 330, 280))], CFG, False, "regions", 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frame_size", "mask", "tracks", "config", "full", "reason", "count"),
    [case[1:] for case in PLAN_CASES],
    ids=[case[0] for case in PLAN_CASES],
)
def test_plan(
    frame_size: tuple[int, int],
    mask: NDArray[np.bool_] | None,
    tracks: list[FakeTrack],
    config: RegionConfig,
    full: bool,
    reason: str,
    count: int,
) -> None:
    plan = plan_regions(frame_size, mask, tracks, config)
    assert (plan.full_frame, plan.reason, len(plan.regions)) == (full, reason, count)
    assert plan.frame_size == frame_size
    for region in plan.regions:
        assert inside_frame(region, *frame_size)
        assert region.input_size in config.input_sizes
    if full:
        assert plan.input_pixels == 0


def test_one_blob_is_one_native_region_holding_it() -> None:
    plan = plan_regions((W, H), mask_with((40, 30, 44, 40)), [], CFG)
    (region,) = plan.regions
    assert region.native and region.side == 256 and region.scale == 1.0
    # The blob is frame px 320..352 x 240..320, plus the 8 px motion margin.
    assert contains(region, 312, 232, 360, 328)


def test_far_blobs_each_get_a_region_around_them() -> None:
    plan = plan_regions((W, H), mask_with((2, 2, 6, 12), (88, 58, 92, 68)), [], CFG)
    first, second = sorted(plan.regions, key=lambda r: r.x0)
    assert contains(first, 16, 16, 48, 96)
    assert contains(second, 704, 464, 736, 544)


def test_overlapping_regions_merge_into_one_holding_both() -> None:
    plan = plan_regions((W, H), mask_with((13, 30, 27, 40), (23, 30, 37, 40)), [], TWO_SIZES)
    (region,) = plan.regions
    assert region.input_size == 320
    assert contains(region, 104 - 8, 240 - 8, 296 + 8, 320 + 8)


def test_cluster_larger_than_the_input_is_a_scaled_region() -> None:
    # Blob spans 400 frame px wide: one 256 input on a ~416 px square, scale >= min_scale.
    plan = plan_regions((W, H), mask_with((20, 30, 70, 34)), [], CFG)
    (region,) = plan.regions
    assert not region.native and region.input_size == 256
    assert region.side >= 400 + 16
    assert CFG.min_scale <= region.scale < 1.0
    assert contains(region, 152, 232, 568, 280)


@pytest.mark.parametrize(
    ("box", "edge"),
    [
        (Box(740, 200, 766, 280), "right"),
        (Box(2, 200, 30, 280), "left"),
        (Box(300, 2, 330, 82), "top"),
        (Box(300, 490, 330, 574), "bottom"),
        (Box(740, 495, 766, 575), "bottom-right"),
    ],
)
def test_tracked_object_near_the_edge_is_clamped_inside_with_margin(box: Box, edge: str) -> None:
    plan = plan_regions((W, H), mask_with(), [FakeTrack(box)], CFG)
    (region,) = plan.regions
    assert inside_frame(region), edge
    margin = CFG.track_margin * max(box.width, box.height)
    assert contains(
        region,
        max(box.x1 - margin, 0),
        max(box.y1 - margin, 0),
        min(box.x2 + margin, W),
        min(box.y2 + margin, H),
    ), edge


@pytest.mark.parametrize(
    ("velocity", "ahead"),
    [
        ((400.0, 0.0), "right"),
        ((-400.0, 0.0), "left"),
        ((0.0, 300.0), "down"),
        ((0.0, -300.0), "up"),
    ],
)
def test_fast_track_region_extends_ahead(velocity: tuple[float, float], ahead: str) -> None:
    box = Box(370, 250, 400, 330)
    still = plan_regions((W, H), mask_with(), [FakeTrack(box)], CFG).regions[0]
    fast = plan_regions((W, H), mask_with(), [FakeTrack(box, velocity)], CFG).regions[0]
    dx = max(-2 * box.width, min(2 * box.width, velocity[0] * CFG.lookahead_s))
    dy = max(-2 * box.height, min(2 * box.height, velocity[1] * CFG.lookahead_s))
    # Where the object will be is inside the region, and the region moved that way.
    assert contains(fast, box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy), ahead
    assert contains(fast, box.x1, box.y1, box.x2, box.y2), ahead
    moved = (fast.x0 - still.x0, fast.y0 - still.y0)
    assert np.sign(moved[0]) == np.sign(dx) and np.sign(moved[1]) == np.sign(dy), ahead


def test_resolution_change_replans_for_the_new_size() -> None:
    planner = RegionPlanner(RegionConfig(input_sizes=(128,), full_frame_every_s=0.0))
    big = planner.plan((W, H), mask_with((40, 30, 44, 40)), [], 0.0)
    small = planner.plan((320, 240), mask_with((20, 10, 23, 16), shape=(72, 96)), [], 0.2)
    assert big.frame_size == (W, H) and small.frame_size == (320, 240)
    (region,) = small.regions
    assert inside_frame(region, 320, 240)
    # The 96x72 mask is stretched over 320x240: the blob is at x 66..77, y 33..53.
    assert contains(region, 66, 33, 77, 53)
    assert planner.fallbacks == 0


@pytest.mark.parametrize(
    ("mask", "tracks"),
    [
        (np.zeros((72, 96), dtype=np.uint8), []),  # not a bool mask
        (np.zeros((72, 96, 3), dtype=bool), []),  # not 2-D
        (mask_with(), [object()]),  # not a track
    ],
    ids=["uint8 mask", "3-D mask", "bad track"],
)
def test_planner_failure_falls_back_to_the_full_frame_and_counts(
    mask: NDArray[Any], tracks: list[Any]
) -> None:
    with pytest.raises((ValueError, AttributeError)):
        plan_regions((W, H), mask, tracks, CFG)
    planner = RegionPlanner(RegionConfig(full_frame_every_s=0.0))
    plan = planner.plan((W, H), mask, tracks, 1.0)
    assert (plan.full_frame, plan.reason, plan.frame_size) == (True, "fallback", (W, H))
    assert planner.fallbacks == 1 and planner.last_error
    # The next good frame plans regions again.
    assert planner.plan((W, H), mask_with((40, 30, 44, 40)), [], 1.2).reason == "regions"


def test_planner_refreshes_the_whole_frame_periodically() -> None:
    planner = RegionPlanner(RegionConfig(full_frame_every_s=10.0))
    mask = mask_with((40, 30, 44, 40))
    reasons = [planner.plan((W, H), mask, [], t).reason for t in (0.0, 5.0, 9.9, 10.0, 12.0)]
    assert reasons == ["refresh", "regions", "regions", "refresh", "regions"]
    # A whole frame for another reason also counts as the refresh.
    assert planner.plan((W, H), None, [], 15.0).reason == "no mask"
    assert planner.plan((W, H), mask, [], 24.9).reason == "regions"
    assert planner.plan((W, H), mask, [], 25.0).reason == "refresh"


def test_by_input_size_groups_regions_for_one_batch_each() -> None:
    plan = RegionPlan(
        frame_size=(W, H),
        regions=(Region(0, 0, 128, 128), Region(300, 0, 256, 256), Region(600, 300, 128, 128)),
    )
    assert plan.by_input_size() == {128: [0, 2], 256: [1]}
    assert plan.input_pixels == 2 * 128 * 128 + 256 * 256


# --- crops ----------------------------------------------------------------------------------


def test_crops_are_the_regions_pixels() -> None:
    frame = np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3).astype(np.uint8)
    plan = RegionPlan(
        frame_size=(W, H), regions=(Region(10, 20, 256, 256), Region(512, 0, 256, 256))
    )
    first, second = crops(frame, plan)
    assert first.shape == second.shape == (256, 256, 3)
    assert np.array_equal(first, frame[20:276, 10:266])
    assert np.array_equal(second, frame[0:256, 512:768])
    assert crops(frame, full_frame_plan((W, H), "no mask")) == []
    with pytest.raises(ValueError, match="plan is for a 768x576 frame"):
        crops(frame[:, :640], plan)


# --- mapping back ---------------------------------------------------------------------------

# (case, region, box in the given coords, coords, expected box in frame px)
MAP_CASES = [
    ("native, crop px", Region(100, 50, 256, 256), (10, 20, 60, 120), "crop", (110, 70, 160, 170)),
    ("native, input px", Region(100, 50, 256, 256), (10, 20, 60, 120), "input",
     (110, 70, 160, 170)),
    ("scaled, crop px", Region(0, 64, 512, 256), (20, 40, 120, 240), "crop", (20, 104, 120, 304)),
    ("scaled, input px", Region(0, 64, 512, 256), (10, 20, 60, 120), "input", (20, 104, 120, 304)),
    ("clipped to the region", Region(100, 50, 256, 256), (-5, 200, 40, 300), "crop",
     (100, 250, 140, 306)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("region", "box", "coords", "expected"),
    [case[1:] for case in MAP_CASES],
    ids=[case[0] for case in MAP_CASES],
)
def test_mapping_back(
    region: Region,
    box: tuple[float, float, float, float],
    coords: Any,
    expected: tuple[float, float, float, float],
) -> None:
    got = region.to_frame(np.array([box], dtype=np.float64), coords)
    assert got.tolist() == [list(map(float, expected))]
    plan = RegionPlan(frame_size=(W, H), regions=(region,))
    (merged,) = merge_detections(plan, [[det(box, 0.9)]], coords=coords)
    assert merged.box.as_list() == list(map(float, expected))
    assert (merged.label, merged.score, merged.class_id) == ("person", 0.9, 0)


# --- border de-duplication ------------------------------------------------------------------


def det(box: tuple[float, float, float, float], score: float, label: str = "person") -> Detection:
    return Detection(
        box=Box(*box), label=label, score=score, class_id=0 if label == "person" else 2
    )


A = Region(0, 100, 256, 256)  # inner right border at x=256, inner bottom at y=356
B = Region(200, 100, 256, 256)  # inner left border at x=200, right at x=456
TWO = RegionPlan(frame_size=(W, H), regions=(A, B))

# (case, detections of A in crop px, of B in crop px, expected frame boxes with scores)
DEDUP_CASES: list[tuple[str, list[Detection], list[Detection], list[tuple[float, ...]]]] = [
    ("cut by A's border, whole in B: B's box", [det((230, 50, 256, 130), 0.95)],
     [det((30, 50, 70, 130), 0.6)], [(230, 150, 270, 230, 0.6)]),
    ("cut by B's border, whole in A: A's box", [det((180, 50, 220, 130), 0.5)],
     [det((0, 52, 20, 128), 0.9)], [(180, 150, 220, 230, 0.5)]),
    ("whole in both (overlap): one, higher score", [det((210, 50, 240, 130), 0.7)],
     [det((11, 51, 40, 131), 0.8)], [(211, 151, 240, 231, 0.8)]),
    ("cut and nowhere whole: kept", [det((230, 50, 256, 130), 0.9)], [],
     [(230, 150, 256, 230, 0.9)]),
    ("different labels never merge", [det((210, 50, 240, 130), 0.7)],
     [det((10, 50, 40, 130), 0.8, "car")], [(210, 150, 240, 230, 0.7), (210, 150, 240, 230, 0.8)]),
    ("two people side by side: both", [det((100, 50, 130, 130), 0.9)],
     [det((40, 50, 70, 130), 0.9)], [(100, 150, 130, 230, 0.9), (240, 150, 270, 230, 0.9)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("in_a", "in_b", "expected"),
    [case[1:] for case in DEDUP_CASES],
    ids=[case[0] for case in DEDUP_CASES],
)
def test_border_deduplication(
    in_a: list[Detection], in_b: list[Detection], expected: list[tuple[float, ...]]
) -> None:
    merged = merge_detections(TWO, [in_a, in_b])
    got = sorted((*d.box.as_list(), d.score) for d in merged)
    assert got == sorted(tuple(float(v) for v in e) for e in expected)


def test_frame_edge_is_not_an_inner_border() -> None:
    # A person at the frame's left edge in region L (x0=0): not cut, so a partly overlapping
    # whole box of another region does not replace it (IoU below the NMS threshold).
    left = Region(0, 0, 256, 256)
    other = Region(0, 200, 256, 256)
    plan = RegionPlan(frame_size=(W, H), regions=(left, other))
    merged = merge_detections(plan, [[det((0, 100, 30, 180), 0.9)], [det((0, -60, 40, 10), 0.5)]])
    assert len(merged) == 2


def test_bottom_inner_border_cut_box_is_replaced() -> None:
    top = Region(300, 0, 256, 256)
    bottom = Region(300, 200, 256, 256)
    plan = RegionPlan(frame_size=(W, H), regions=(top, bottom))
    merged = merge_detections(plan, [[det((50, 220, 80, 256), 0.9)], [det((50, 20, 80, 100), 0.6)]])
    assert [(d.box.as_list(), d.score) for d in merged] == [([350.0, 220.0, 380.0, 300.0], 0.6)]


def test_merge_checks_one_list_per_region_and_passes_full_frames_through() -> None:
    with pytest.raises(ValueError, match="one per region"):
        merge_detections(TWO, [[]])
    whole = [det((1, 2, 3, 4), 0.5)]
    assert merge_detections(full_frame_plan((W, H), "no mask"), [whole]) == whole
    assert merge_detections(TWO, [[], []]) == []


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_sizes": ()},
        {"input_sizes": (100,)},
        {"input_sizes": (256, 256)},
        {"min_scale": 0.0},
        {"max_regions": 0},
        {"full_frame_motion": 0.0},
        {"max_cost": 1.5},
        {"merge_overlap": 0.0},
        {"min_blob_px": 0},
        {"track_margin": -0.1},
        {"lookahead_s": -1.0},
        {"full_frame_every_s": -1.0},
    ],
)
def test_region_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RegionConfig(**kwargs)


def test_input_sizes_are_sorted() -> None:
    assert RegionConfig(input_sizes=(320, 160)).input_sizes == (160, 320)


def test_camera_regions_settings_become_the_planner_config() -> None:
    cam = CameraConfig.model_validate(
        {
            "id": "cam",
            "source": "/tmp/x.mp4",
            "regions": {"input_sizes": [320, 160], "max_regions": 3, "full_frame_every_s": 0},
        }
    )
    cfg = cam.regions.region_config(full_size=512)
    assert (cfg.input_sizes, cfg.max_regions, cfg.full_size, cfg.full_frame_every_s) == (
        (160, 320),
        3,
        512,
        0.0,
    )
    default = CameraConfig(id="cam", source="/tmp/x.mp4").regions.region_config()
    assert default == RegionConfig()
    for bad in ({"input_sizes": [256, 256]}, {"input_sizes": [100]}, {"unknown": 1}):
        with pytest.raises(ValueError):
            CameraConfig.model_validate({"id": "cam", "source": "/tmp/x.mp4", "regions": bad})
