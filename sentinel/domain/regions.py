"""Motion regions: run the detector on a few square crops around motion and tracked objects.

Instead of sending the whole frame to the detector at its full input size (e.g. 640), the
planner picks a few square regions of the frame: around the blobs of the motion gate's
changed-pixel mask and around the live tracks (extended towards where they are heading, with
a margin). A region is cut at *native* resolution when one of the configured input sizes fits
it (``side == input_size``: small, distant people keep every pixel) and is a larger square
scaled down to the largest input size otherwise. Clusters are merged while merging does not
cost more model pixels, and when their squares overlap heavily. When motion is everywhere, a
region would not fit in the frame, or the regions would not be cheaper than the full frame, the
plan says "full frame".

The camera loop then:

1. ``plan = planner.plan((width, height), decision.mask, pipeline.active_tracks(), ts)``
   (:class:`RegionPlanner` never raises: a planner error is counted and gives a full-frame
   plan; the pure :func:`plan_regions` raises, for callers that handle it themselves);
2. if ``plan.full_frame``: detects on the whole frame as before; if ``plan.regions`` is empty
   there is nothing to look at (no detector call, the frame's detections are ``[]``);
3. otherwise ``crops(frame, plan)``, detected per input size in one batch each
   (:meth:`RegionPlan.by_input_size`), and
   ``merge_detections(plan, per_region_detections)`` maps the boxes back to frame pixels and
   removes the duplicates across region borders.

Nothing here keeps state that assumes a frame size: each plan is made for the frame size it is
given (a camera whose resolution changes mid-stream simply gets plans for the new size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.boxes import nms
from sentinel.domain.types import Box, Detection

FrameSize = tuple[int, int]  # (width, height) in pixels
# (x1, y1, x2, y2) in frame pixels.
_Rect = tuple[float, float, float, float]


class Tracked(Protocol):
    """What the planner reads of a track (:class:`~sentinel.domain.tracking.Track` fits)."""

    @property
    def box(self) -> Box: ...

    @property
    def velocity(self) -> tuple[float, float]: ...


@dataclass(frozen=True)
class RegionConfig:
    """Settings of the region planner.

    Attributes:
        enabled: When false every analysed frame goes to the detector whole.
        input_sizes: Model input sides (px, ascending after validation) a region may be
            detected at; a region is cut at native resolution at the smallest size that holds
            it. Fewer sizes batch better (one detector call per size).
        full_size: Input side of the full-frame path (the detector's ``input_size``): the cost
            regions are compared with.
        min_scale: Smallest scale (model px per frame px) a region larger than the largest
            input size may be shrunk to; a cluster that would need less is too large for a
            region and the frame goes whole.
        track_margin: Margin added around each tracked box, as a fraction of its larger side
            (each side).
        lookahead_s: Tracked boxes are extended along their velocity by this many seconds,
            towards where the object will be.
        motion_margin_px: Margin (frame px) added around each motion blob.
        min_blob_px: Motion blobs with fewer changed mask pixels are ignored (noise).
        max_regions: More regions than this are merged (cheapest first) or, failing that,
            the frame goes whole.
        full_frame_motion: Fraction of changed mask pixels at or above which the frame goes
            whole ("motion everywhere").
        max_cost: Regions whose model pixels reach this fraction of the full frame's are not
            worth it: the frame goes whole.
        merge_overlap: Two regions whose squares overlap by at least this fraction of the
            smaller one are merged (when the merged cluster still fits a region).
        full_frame_every_s: :class:`RegionPlanner` sends a whole frame at least this often
            (stream seconds), so objects that neither move nor are tracked are still found;
            0 disables it.
    """

    enabled: bool = True
    input_sizes: tuple[int, ...] = (256,)
    full_size: int = 640
    min_scale: float = 0.5
    track_margin: float = 0.15
    lookahead_s: float = 0.3
    motion_margin_px: int = 8
    min_blob_px: int = 2
    max_regions: int = 4
    full_frame_motion: float = 0.25
    max_cost: float = 0.8
    merge_overlap: float = 0.3
    full_frame_every_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.input_sizes:
            raise ValueError("input_sizes must name at least one input size")
        if any(s < 32 or s % 32 for s in self.input_sizes):
            raise ValueError(
                f"input_sizes must be multiples of 32 and >= 32, but got {self.input_sizes}"
            )
        if len(set(self.input_sizes)) != len(self.input_sizes):
            raise ValueError(f"input_sizes must be distinct, but got {self.input_sizes}")
        object.__setattr__(self, "input_sizes", tuple(sorted(self.input_sizes)))
        if self.full_size < 32:
            raise ValueError(f"full_size must be >= 32, but got {self.full_size}")
        if not 0.0 < self.min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], but got {self.min_scale}")
        if not 0.0 <= self.track_margin <= 2.0:
            raise ValueError(f"track_margin must be in [0, 2], but got {self.track_margin}")
        if not 0.0 <= self.lookahead_s <= 5.0:
            raise ValueError(f"lookahead_s must be in [0, 5], but got {self.lookahead_s}")
        if self.motion_margin_px < 0:
            raise ValueError(f"motion_margin_px must be >= 0, but got {self.motion_margin_px}")
        if self.min_blob_px < 1:
            raise ValueError(f"min_blob_px must be >= 1, but got {self.min_blob_px}")
        if self.max_regions < 1:
            raise ValueError(f"max_regions must be >= 1, but got {self.max_regions}")
        if not 0.0 < self.full_frame_motion <= 1.0:
            raise ValueError(
                f"full_frame_motion must be in (0, 1], but got {self.full_frame_motion}"
            )
        if not 0.0 < self.max_cost <= 1.0:
            raise ValueError(f"max_cost must be in (0, 1], but got {self.max_cost}")
        if not 0.0 < self.merge_overlap <= 1.0:
            raise ValueError(f"merge_overlap must be in (0, 1], but got {self.merge_overlap}")
        if self.full_frame_every_s < 0.0:
            raise ValueError(f"full_frame_every_s must be >= 0, but got {self.full_frame_every_s}")


@dataclass(frozen=True)
class Region:
    """One square crop of the frame and the model input size it is detected at.

    Attributes:
        x0: Left edge in frame pixels.
        y0: Top edge in frame pixels.
        side: Side of the square in frame pixels.
        input_size: Side of the model input the crop is detected at; ``side == input_size``
            is native resolution, a larger side is scaled down.
    """

    x0: int
    y0: int
    side: int
    input_size: int

    def __post_init__(self) -> None:
        if self.x0 < 0 or self.y0 < 0:
            raise ValueError(f"region must start inside the frame, but got ({self.x0}, {self.y0})")
        if self.side < 1 or self.input_size < 1:
            raise ValueError(
                f"side and input_size must be >= 1, but got {self.side}, {self.input_size}"
            )

    @property
    def scale(self) -> float:
        """Model input pixels per frame pixel (1.0 at native resolution)."""
        return self.input_size / self.side

    @property
    def native(self) -> bool:
        return self.side == self.input_size

    @property
    def box(self) -> Box:
        """The region in frame pixels."""
        return Box(self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)

    def to_frame(
        self, boxes_xyxy: NDArray[np.floating], coords: Literal["crop", "input"] = "crop"
    ) -> NDArray[np.float64]:
        """Map ``(N, 4)`` xyxy boxes of this region to frame pixels, clipped to the region.

        Args:
            boxes_xyxy: Boxes in crop pixels (``"crop"``: what a detector that letterboxes the
                crop itself returns) or in model-input pixels (``"input"``: the crop was
                resized to ``input_size`` before detection).
            coords: Which of the two.

        Returns:
            A new ``(N, 4)`` float64 array in frame pixels.
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
        if coords == "input":
            boxes /= self.scale
        boxes = np.clip(boxes, 0.0, float(self.side))
        boxes[:, [0, 2]] += self.x0
        boxes[:, [1, 3]] += self.y0
        return boxes


@dataclass(frozen=True)
class RegionPlan:
    """Where to run the detector on one frame.

    Attributes:
        frame_size: ``(width, height)`` of the frame the plan is for.
        regions: The regions to detect on (empty with ``full_frame``, or when there is
            nothing to look at).
        full_frame: Detect on the whole frame instead.
        reason: Why: ``"regions"``, ``"nothing to look at"``, or for a full frame ``"no
            mask"``, ``"disabled"``, ``"motion everywhere"``, ``"too large"``, ``"too many
            regions"``, ``"not cheaper"``, ``"refresh"`` or ``"fallback"`` (the planner
            failed, see :class:`RegionPlanner`).
    """

    frame_size: FrameSize
    regions: tuple[Region, ...] = ()
    full_frame: bool = False
    reason: str = "regions"

    @property
    def input_pixels(self) -> int:
        """Model input pixels of the regions (0 for a full-frame plan)."""
        return sum(r.input_size * r.input_size for r in self.regions)

    def by_input_size(self) -> dict[int, list[int]]:
        """Indices of the regions per model input size: one detector batch each."""
        out: dict[int, list[int]] = {}
        for index, region in enumerate(self.regions):
            out.setdefault(region.input_size, []).append(index)
        return out


def full_frame_plan(frame_size: FrameSize, reason: str) -> RegionPlan:
    """A plan that sends the whole frame to the detector."""
    return RegionPlan(frame_size=frame_size, full_frame=True, reason=reason)


def plan_regions(
    frame_size: FrameSize,
    mask: NDArray[np.bool_] | None,
    tracks: Sequence[Tracked],
    config: RegionConfig,
) -> RegionPlan:
    """Choose the regions of one frame to run the detector on.

    Args:
        frame_size: ``(width, height)`` of the frame in pixels.
        mask: The motion gate's changed-pixel mask (``(h, w)`` bool at its small scale, any
            size: it is stretched over the frame); ``None`` (first frame, reset) plans the
            whole frame.
        tracks: The live tracks (boxes in frame pixels, velocity in px/s).
        config: Planner settings.

    Returns:
        The plan.

    Raises:
        ValueError: On a bad frame size or mask. A caller in the camera loop catches any
            exception and detects on the whole frame (see :class:`RegionPlanner`).
    """
    width, height = int(frame_size[0]), int(frame_size[1])
    if width < 1 or height < 1:
        raise ValueError(f"frame_size must be positive, but got {frame_size}")
    size = (width, height)
    if not config.enabled:
        return full_frame_plan(size, "disabled")
    if mask is None:
        return full_frame_plan(size, "no mask")
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0 or mask.dtype != np.bool_:
        raise ValueError(f"mask must be a non-empty (h, w) bool array, but got {mask.shape}")
    if np.count_nonzero(mask) >= config.full_frame_motion * mask.size:
        return full_frame_plan(size, "motion everywhere")

    items = [_clip(r, width, height) for r in _motion_rects(mask, width, height, config)]
    items += [_clip(_track_rect(t, config), width, height) for t in tracks]
    items = [r for r in items if r[2] > r[0] and r[3] > r[1]]
    if not items:
        return RegionPlan(frame_size=size, reason="nothing to look at")
    if any(_input_for(r, width, height, config) is None for r in items):
        return full_frame_plan(size, "too large")

    clusters = _cluster(items, width, height, config)
    if clusters is None:
        return full_frame_plan(size, "too large")
    if len(clusters) > config.max_regions:
        return full_frame_plan(size, "too many regions")
    regions = tuple(_region(c, width, height, config) for c in clusters)
    plan = RegionPlan(frame_size=size, regions=regions)
    if plan.input_pixels >= config.max_cost * config.full_size * config.full_size:
        return full_frame_plan(size, "not cheaper")
    return plan


def crops(frame: NDArray[np.uint8], plan: RegionPlan) -> list[NDArray[np.uint8]]:
    """The ``(side, side, 3)`` crops of a region plan, in the plan's order.

    The crops are views of ``frame`` (no copy); a detector that letterboxes each crop to the
    region's ``input_size`` returns boxes in crop pixels, which :func:`merge_detections` takes.

    Args:
        frame: The ``(H, W, 3)`` frame the plan was made for.
        plan: A plan for this frame's size.

    Returns:
        One crop per region (none for a full-frame plan).

    Raises:
        ValueError: If the frame's size is not the plan's.
    """
    height, width = int(frame.shape[0]), int(frame.shape[1])
    if (width, height) != plan.frame_size:
        raise ValueError(
            f"the plan is for a {plan.frame_size[0]}x{plan.frame_size[1]} frame, "
            f"but the frame is {width}x{height}"
        )
    return [frame[r.y0 : r.y0 + r.side, r.x0 : r.x0 + r.side] for r in plan.regions]


def merge_detections(
    plan: RegionPlan,
    per_region: Sequence[Sequence[Detection]],
    *,
    coords: Literal["crop", "input"] = "crop",
    iou_threshold: float = 0.5,
    containment: float = 0.6,
    edge_px: float = 2.0,
) -> list[Detection]:
    """Map each region's detections to frame pixels and remove duplicates across borders.

    A box touching an *inner* border of its region (a crop edge that is not the frame's edge)
    may be a cut-off part of an object: it is dropped when a box of the same label from another
    region, not cut, covers at least ``containment`` of it (that region holds the object
    whole). The rest go through per-label NMS, which merges the duplicates of overlapping
    regions (the higher score wins).

    Args:
        plan: The plan the detections come from; a full-frame plan takes one list (the whole
            frame's detections) and returns it as it is.
        per_region: Detections of each region, in the plan's order, in ``coords`` pixels.
        coords: ``"crop"`` (crop pixels) or ``"input"`` (model-input pixels).
        iou_threshold: Same-label boxes overlapping more than this are duplicates.
        containment: Fraction of a cut box that a whole box must cover to replace it.
        edge_px: A box within this many model-input pixels of an inner border is cut.

    Returns:
        Detections in frame pixels, by descending score.

    Raises:
        ValueError: If ``per_region`` does not have one list per region.
    """
    if plan.full_frame:
        if len(per_region) != 1:
            raise ValueError(f"a full-frame plan takes 1 list, but got {len(per_region)}")
        return list(per_region[0])
    if len(per_region) != len(plan.regions):
        raise ValueError(
            f"expected {len(plan.regions)} lists of detections, one per region, "
            f"but got {len(per_region)}"
        )
    width, height = plan.frame_size
    found: list[Detection] = []
    cut: list[bool] = []
    origin: list[int] = []
    for index, (region, detections) in enumerate(zip(plan.regions, per_region, strict=True)):
        if not detections:
            continue
        raw = np.array([d.box.as_list() for d in detections], dtype=np.float64)
        frame_boxes = region.to_frame(raw, coords)
        # Box edges are as precise as the model's input pixels: wider in a scaled region.
        tol = edge_px / region.scale
        inner_left, inner_top = region.x0 > 0, region.y0 > 0
        inner_right = region.x0 + region.side < width
        inner_bottom = region.y0 + region.side < height
        x0, y0, x1, y1 = region.x0, region.y0, region.x0 + region.side, region.y0 + region.side
        for det, b in zip(detections, frame_boxes, strict=True):
            found.append(replace(det, box=Box(*(float(v) for v in b))))
            cut.append(
                bool(
                    (inner_left and b[0] <= x0 + tol)
                    or (inner_top and b[1] <= y0 + tol)
                    or (inner_right and b[2] >= x1 - tol)
                    or (inner_bottom and b[3] >= y1 - tol)
                )
            )
            origin.append(index)
    if not found:
        return []
    boxes = np.array([d.box.as_list() for d in found], dtype=np.float64)
    keep = [
        not cut[i] or not _held_whole(i, found, boxes, cut, origin, containment)
        for i in range(len(found))
    ]
    kept = [i for i in range(len(found)) if keep[i]]
    if not kept:
        return []
    kept_boxes = boxes[kept]
    scores = np.array([found[i].score for i in kept], dtype=np.float64)
    labels = sorted({found[i].label for i in kept})
    label_index = np.array([labels.index(found[i].label) for i in kept], dtype=np.float64)
    # Class-offset trick: one NMS call, boxes of different labels never suppress each other.
    offset = label_index[:, None] * (float(max(width, height)) + 1.0) * 2.0
    order = nms(kept_boxes + offset, scores, iou_threshold)
    return [found[kept[int(i)]] for i in order]


class RegionPlanner:
    """:func:`plan_regions` for a camera loop: never raises, counts fallbacks, refreshes.

    A planner error gives a full-frame plan for that frame (``reason="fallback"``) and counts
    it in :attr:`fallbacks`, so a bad mask or track never stops the camera. With
    ``config.full_frame_every_s`` the whole frame is also sent at least that often. The only
    state is the time of the last whole frame: frame size changes need nothing.

    Args:
        config: Planner settings.
    """

    def __init__(self, config: RegionConfig | None = None) -> None:
        self.config = config if config is not None else RegionConfig()
        self.fallbacks = 0
        self.last_error: str | None = None
        self._last_full_t: float | None = None

    def plan(
        self,
        frame_size: FrameSize,
        mask: NDArray[np.bool_] | None,
        tracks: Sequence[Tracked],
        t: float,
    ) -> RegionPlan:
        """The plan for the frame at stream time ``t`` (see :func:`plan_regions`)."""
        every = self.config.full_frame_every_s
        last = self._last_full_t
        if self.config.enabled and every > 0.0 and (last is None or t - last >= every):
            self._last_full_t = t
            return full_frame_plan(_safe_size(frame_size), "refresh")
        try:
            plan = plan_regions(frame_size, mask, tracks, self.config)
        except Exception as exc:
            self.fallbacks += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            plan = full_frame_plan(_safe_size(frame_size), "fallback")
        if plan.full_frame:
            self._last_full_t = t
        return plan


def _safe_size(frame_size: FrameSize) -> FrameSize:
    try:
        return (int(frame_size[0]), int(frame_size[1]))
    except (TypeError, ValueError, IndexError):
        return (0, 0)


def _held_whole(
    i: int,
    found: list[Detection],
    boxes: NDArray[np.float64],
    cut: list[bool],
    origin: list[int],
    containment: float,
) -> bool:
    """Whether cut box ``i`` is covered enough by a whole box of another region."""
    area = float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]))
    if area <= 0.0:
        return True
    for j in range(len(found)):
        if cut[j] or origin[j] == origin[i] or found[j].label != found[i].label:
            continue
        iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
        ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
        if iw > 0.0 and ih > 0.0 and iw * ih >= containment * area:
            return True
    return False


def _clip(r: _Rect, width: int, height: int) -> _Rect:
    return (
        min(max(r[0], 0.0), float(width)),
        min(max(r[1], 0.0), float(height)),
        min(max(r[2], 0.0), float(width)),
        min(max(r[3], 0.0), float(height)),
    )


def _track_rect(track: Tracked, config: RegionConfig) -> _Rect:
    """A track's box, extended along its velocity by ``lookahead_s``, with the margin."""
    box = track.box
    vx, vy = track.velocity
    dx, dy = vx * config.lookahead_s, vy * config.lookahead_s
    # A jittery velocity never stretches the box more than two box sizes ahead.
    dx = max(-2.0 * box.width, min(2.0 * box.width, dx))
    dy = max(-2.0 * box.height, min(2.0 * box.height, dy))
    x1, x2 = min(box.x1, box.x1 + dx), max(box.x2, box.x2 + dx)
    y1, y2 = min(box.y1, box.y1 + dy), max(box.y2, box.y2 + dy)
    margin = config.track_margin * max(box.width, box.height)
    return (x1 - margin, y1 - margin, x2 + margin, y2 + margin)


def _motion_rects(
    mask: NDArray[np.bool_], width: int, height: int, config: RegionConfig
) -> list[_Rect]:
    """Bounding boxes (frame px, with margin) of the mask's blobs of ``min_blob_px`` or more.

    Blobs are the 8-connected components of the mask dilated by one pixel (so the fragments of
    one moving object join); a blob's size counts its changed pixels before dilation.
    """
    mh, mw = mask.shape
    grown = mask.copy()
    grown[1:, :] |= mask[:-1, :]
    grown[:-1, :] |= mask[1:, :]
    rows = grown.copy()
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    labels = _label(grown)
    if labels.max() == 0:
        return []
    count = int(labels.max())
    sizes = np.bincount(labels[mask], minlength=count + 1)
    ys, xs = np.nonzero(mask)  # the blob's own pixels: the dilation adds no margin
    ids = labels[ys, xs]
    x_min = np.full(count + 1, mw, dtype=np.int64)
    y_min = np.full(count + 1, mh, dtype=np.int64)
    x_max = np.full(count + 1, -1, dtype=np.int64)
    y_max = np.full(count + 1, -1, dtype=np.int64)
    np.minimum.at(x_min, ids, xs)
    np.minimum.at(y_min, ids, ys)
    np.maximum.at(x_max, ids, xs)
    np.maximum.at(y_max, ids, ys)
    sx, sy = width / mw, height / mh
    m = float(config.motion_margin_px)
    return [
        (
            x_min[k] * sx - m,
            y_min[k] * sy - m,
            (x_max[k] + 1) * sx + m,
            (y_max[k] + 1) * sy + m,
        )
        for k in range(1, count + 1)
        if sizes[k] >= config.min_blob_px
    ]


def _label(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """8-connected component labels (1..n, 0 for background) by union-find on run starts."""
    mh, mw = mask.shape
    labels = np.zeros((mh, mw), dtype=np.int64)
    parent: list[int] = [0]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ys, xs = np.nonzero(mask)
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        neighbours = []
        if x > 0 and labels[y, x - 1]:
            neighbours.append(int(labels[y, x - 1]))
        if y > 0:
            for nx in (x - 1, x, x + 1):
                if 0 <= nx < mw and labels[y - 1, nx]:
                    neighbours.append(int(labels[y - 1, nx]))
        if not neighbours:
            parent.append(len(parent))
            labels[y, x] = len(parent) - 1
            continue
        found_roots = {find(n) for n in neighbours}
        root = min(found_roots)
        for other in found_roots:
            parent[other] = root
        labels[y, x] = root
    if len(parent) == 1:
        return labels
    roots = [find(i) for i in range(len(parent))]
    dense = {root: k for k, root in enumerate(sorted(set(roots) - {0}), start=1)}
    lookup = np.array([0] + [dense[root] for root in roots[1:]], dtype=np.int64)
    return np.asarray(lookup[labels], dtype=np.int64)


def _input_for(r: _Rect, width: int, height: int, config: RegionConfig) -> int | None:
    """The model input size a cluster with bounding box ``r`` is detected at (None: none)."""
    needed = max(r[2] - r[0], r[3] - r[1], 1.0)
    for size in config.input_sizes:
        if needed <= size:
            return size if size <= min(width, height) else None
    largest = config.input_sizes[-1]
    if largest / needed < config.min_scale or needed > min(width, height):
        return None
    return largest


def _cost(r: _Rect, width: int, height: int, config: RegionConfig) -> float:
    size = _input_for(r, width, height, config)
    return math.inf if size is None else float(size * size)


def _union(a: _Rect, b: _Rect) -> _Rect:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _cluster(
    items: list[_Rect], width: int, height: int, config: RegionConfig
) -> list[_Rect] | None:
    """Greedy agglomeration of the items' boxes into clusters, each one region.

    Repeatedly merges the pair that saves the most model pixels (a merge that costs no more
    than the two regions apart), or whose squares overlap by ``merge_overlap`` of the smaller
    one; then, while there are more than ``max_regions``, the pair whose merge costs least.
    Returns None when a cluster cannot be one region.
    """
    clusters = list(items)
    while len(clusters) > 1:
        best: tuple[float, int, int] | None = None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                merged = _union(clusters[i], clusters[j])
                cost = _cost(merged, width, height, config)
                if math.isinf(cost):
                    continue
                apart = _cost(clusters[i], width, height, config) + _cost(
                    clusters[j], width, height, config
                )
                saving = apart - cost
                if saving < 0 and _overlap(clusters[i], clusters[j], width, height, config) < (
                    config.merge_overlap
                ):
                    continue
                if best is None or saving > best[0]:
                    best = (saving, i, j)
        if best is None:
            break
        _, i, j = best
        clusters[i] = _union(clusters[i], clusters[j])
        del clusters[j]
    while len(clusters) > config.max_regions:
        cheapest: tuple[float, int, int] | None = None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                cost = _cost(_union(clusters[i], clusters[j]), width, height, config)
                if not math.isinf(cost) and (cheapest is None or cost < cheapest[0]):
                    cheapest = (cost, i, j)
        if cheapest is None:
            break
        _, i, j = cheapest
        clusters[i] = _union(clusters[i], clusters[j])
        del clusters[j]
    return clusters


def _overlap(a: _Rect, b: _Rect, width: int, height: int, config: RegionConfig) -> float:
    """Overlap of the two clusters' region squares, as a fraction of the smaller square."""
    ra, rb = _region(a, width, height, config), _region(b, width, height, config)
    iw = min(ra.x0 + ra.side, rb.x0 + rb.side) - max(ra.x0, rb.x0)
    ih = min(ra.y0 + ra.side, rb.y0 + rb.side) - max(ra.y0, rb.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / float(min(ra.side, rb.side) ** 2)


def _region(r: _Rect, width: int, height: int, config: RegionConfig) -> Region:
    """The square region of a cluster: centred on it, clamped inside the frame."""
    size = _input_for(r, width, height, config)
    if size is None:
        raise ValueError(f"cluster {r} does not fit a region of a {width}x{height} frame")
    needed = max(r[2] - r[0], r[3] - r[1])
    side = min(max(size, math.ceil(needed)), width, height)
    cx, cy = (r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0
    x0 = min(max(round(cx - side / 2.0), 0), width - side)
    y0 = min(max(round(cy - side / 2.0), 0), height - side)
    return Region(x0=int(x0), y0=int(y0), side=int(side), input_size=size)
