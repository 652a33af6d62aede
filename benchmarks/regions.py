"""Motion regions vs the full frame at 640, on PETS09-S2L1 frames 1-400 against ground truth.

What runs: one pass over the first ``LAST_FRAME`` frames of the sample clip, sampled as the
camera does with the default :class:`CameraConfig` (``detect_fps`` 5 on the 10 fps clip: every
2nd frame). Each sampled frame goes through several independent paths, each with its own
:class:`FramePipeline` (the camera's default pipeline config: motion gate, tracker, events), so
that its motion mask and its tracks evolve as in the camera from its own detections:

  * ``full``: the whole frame at 640 (:class:`YoloOnnx`, ``input_size`` 640), today's path;
  * one path per region config (the camera default first): :class:`RegionPlanner` plans the
    frame from the gate's mask and the live tracks; the crops are detected per input size in
    one batch each (a :class:`YoloOnnx` per size on the same file), and
    :func:`merge_detections` maps them back. Full-frame plans use the 640 runner.

Every runner has ``threads=1``, so the detector's CPU is the calling thread's CPU
(``time.thread_time`` around ``YoloOnnx.detect``: letterbox, inference, decoding). Planning,
cropping and merging are timed apart ("planner CPU").

Definitions (on the frames analysed by both the path and ``full``; ground-truth frame N is the
N-th decoded frame):
  * person recall/precision: person detections scoring >= the camera's ``min_score`` matched to
    the flag-1 ground-truth boxes at IoU >= 0.5 (motmetrics, as in ``benchmarks/tracking.py``,
    flag-0 boxes ignored the same way);
  * CPU ratio: detector CPU per analysed frame of the path / that of ``full``;
  * pixel ratio: model input pixels per analysed frame / 640 x 640;
  * recall ratio: recall of the path / recall of ``full`` on the same frames.

Targets (issue 15): CPU ratio <= 0.4 at recall ratio >= 0.97, for the camera default.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import motmetrics as mm
import numpy as np
from numpy.typing import NDArray

from benchmarks.common import sample_video, verdict
from benchmarks.tracking import (
    LABEL,
    LAST_FRAME,
    MATCH_IOU,
    GroundTruth,
    _not_ignored,
    _xywh,
    iou_distances,
    load_ground_truth,
)
from sentinel.config import CameraConfig, RegionSettings
from sentinel.domain.pipeline import FramePipeline
from sentinel.domain.regions import RegionConfig, RegionPlanner, crops, merge_detections
from sentinel.domain.types import Box, Detection
from sentinel.models.yolo import YoloOnnx
from sentinel.video.source import to_gray_small

FULL_SIZE = 640
TARGET_CPU_RATIO = 0.4
TARGET_RECALL_RATIO = 0.97
WALL0 = datetime(2026, 1, 1, tzinfo=UTC)


def candidate_configs(default: RegionConfig) -> dict[str, RegionConfig]:
    """The camera default first, then a few alternatives for the trade-off curve."""
    return {
        "default": default,
        "320x4": RegionConfig(input_sizes=(320,), max_regions=4),
        "224x4": RegionConfig(input_sizes=(224,), max_regions=4),
        "192x4 min_scale 0.4": RegionConfig(input_sizes=(192,), max_regions=4, min_scale=0.4),
        "160+320 x6": RegionConfig(input_sizes=(160, 320), max_regions=6),
    }


@dataclass
class PathStats:
    """What one path did and found."""

    name: str
    pipeline: FramePipeline
    planner: RegionPlanner | None = None
    detector_cpu_s: float = 0.0
    planner_cpu_s: float = 0.0
    input_pixels: int = 0
    detector_calls: int = 0
    plans: Counter[str] = field(default_factory=Counter)
    regions: int = 0
    detections: dict[int, list[Box]] = field(default_factory=dict)

    @property
    def analysed(self) -> int:
        return len(self.detections)


class Detectors:
    """One ``YoloOnnx`` per input size on the same model file, all single-threaded."""

    def __init__(self, model_path: Path) -> None:
        self.path = model_path
        self._models: dict[int, YoloOnnx] = {}

    def get(self, size: int) -> YoloOnnx:
        if size not in self._models:
            self._models[size] = YoloOnnx(self.path, input_size=size, threads=1)
        return self._models[size]


def _detect(
    path: PathStats,
    models: Detectors,
    frame_size: tuple[int, int],
    rgb: NDArray[np.uint8],
    t: float,
    mask: NDArray[np.bool_] | None,
) -> list[Detection]:
    def full() -> list[Detection]:
        start = time.thread_time()
        dets = models.get(FULL_SIZE).detect([rgb])[0]
        path.detector_cpu_s += time.thread_time() - start
        path.input_pixels += FULL_SIZE * FULL_SIZE
        path.detector_calls += 1
        return dets

    if path.planner is None:
        path.plans["full"] += 1
        return full()
    start = time.thread_time()
    plan = path.planner.plan(frame_size, mask, path.pipeline.active_tracks(), t)
    path.planner_cpu_s += time.thread_time() - start
    path.plans[plan.reason] += 1
    if plan.full_frame:
        return full()
    if not plan.regions:
        return []
    start = time.thread_time()
    cut = crops(rgb, plan)
    path.planner_cpu_s += time.thread_time() - start
    per_region: list[list[Detection]] = [[] for _ in plan.regions]
    for size, indices in plan.by_input_size().items():
        start = time.thread_time()
        found = models.get(size).detect([cut[i] for i in indices])
        path.detector_cpu_s += time.thread_time() - start
        path.detector_calls += 1
        for i, dets in zip(indices, found, strict=True):
            per_region[i] = dets
    path.input_pixels += plan.input_pixels
    path.regions += len(plan.regions)
    start = time.thread_time()
    merged = merge_detections(plan, per_region)
    path.planner_cpu_s += time.thread_time() - start
    return merged


def run_paths(
    video: Path, model_path: Path, configs: dict[str, RegionConfig], camera: CameraConfig
) -> list[PathStats]:
    """Runs the full-frame path and one path per config over the sampled frames."""
    models = Detectors(model_path)
    paths = [PathStats("full", FramePipeline(camera.id, "full", camera.pipeline_config()))]
    paths += [
        PathStats(
            name, FramePipeline(camera.id, name, camera.pipeline_config()), RegionPlanner(cfg)
        )
        for name, cfg in configs.items()
    ]
    min_score = camera.pipeline_config().min_score
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 10)
        every = max(1, round(fps / camera.detect_fps))
        for index, frame in enumerate(container.decode(video=0)):
            if index >= LAST_FRAME:
                break
            if index % every:
                continue
            rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            gray = to_gray_small(frame)
            t = index / fps
            wall = WALL0 + timedelta(seconds=t)
            size = (int(rgb.shape[1]), int(rgb.shape[0]))
            for path in paths:
                decision = path.pipeline.wants_detection(gray, t)
                if not decision.detect:
                    path.pipeline.on_skipped(t, wall)
                    continue
                dets = _detect(path, models, size, rgb, t, decision.mask)
                path.pipeline.on_detections(dets, t, wall, rgb)
                path.detections[index + 1] = [
                    d.box for d in dets if d.label == LABEL and d.score >= min_score
                ]
    return paths


def person_scores(
    detections: dict[int, list[Box]], frames: list[int], gt: GroundTruth
) -> tuple[float, float]:
    """(recall, precision) of the person detections on ``frames`` at IoU >= 0.5."""
    acc = mm.MOTAccumulator(auto_id=False)
    next_id = 1
    for frame in frames:
        gt_boxes = np.array(gt.boxes.get(frame, []), dtype=np.float64).reshape(-1, 4)
        ignore = np.array(gt.ignore.get(frame, []), dtype=np.float64).reshape(-1, 4)
        boxes = _xywh(detections[frame])
        boxes = boxes[_not_ignored(boxes, gt_boxes, ignore)]
        ids = list(range(next_id, next_id + len(boxes)))
        next_id += len(boxes)
        acc.update(
            gt.ids.get(frame, []),
            ids,
            iou_distances(gt_boxes, boxes, 1.0 - MATCH_IOU),
            frameid=frame,
        )
    summary = mm.metrics.create().compute(acc, metrics=["recall", "precision"], name="d")
    return float(summary.loc["d", "recall"]), float(summary.loc["d", "precision"])


def report(paths: list[PathStats], gt: GroundTruth) -> None:
    full = paths[0]
    full_cpu = full.detector_cpu_s / max(full.analysed, 1)
    for path in paths:
        frames = sorted(set(path.detections) & set(full.detections))
        recall, precision = person_scores(path.detections, frames, gt)
        base_recall, _ = person_scores(full.detections, frames, gt)
        cpu = path.detector_cpu_s / max(path.analysed, 1)
        cpu_ratio = cpu / full_cpu if full_cpu else float("nan")
        recall_ratio = recall / base_recall if base_recall else float("nan")
        pixels = path.input_pixels / max(path.analysed, 1) / (FULL_SIZE * FULL_SIZE)
        plans = ", ".join(f"{k} {v}" for k, v in sorted(path.plans.items()))
        print(
            f"regions: [{path.name}] {path.analysed} analysed frames, detector CPU "
            f"{cpu * 1000:.1f} ms/frame (ratio {cpu_ratio:.3f}), input pixels ratio "
            f"{pixels:.3f}, {path.detector_calls} detector calls, "
            f"{path.regions / max(path.analysed, 1):.2f} regions/frame, planner CPU "
            f"{path.planner_cpu_s / max(path.analysed, 1) * 1000:.2f} ms/frame",
            flush=True,
        )
        print(
            f"regions: [{path.name}] person recall {recall:.3f} vs full {base_recall:.3f} "
            f"(ratio {recall_ratio:.3f}), precision {precision:.3f} on {len(frames)} frames; "
            f"plans: {plans}",
            flush=True,
        )
        if path.planner is not None:
            fell_back = sum(
                v for k, v in path.plans.items() if k not in ("regions", "nothing to look at")
            )
            print(
                f"regions: [{path.name}] whole frames {fell_back} of {path.analysed} "
                f"(planner failures {path.planner.fallbacks})",
                flush=True,
            )
        if path.name == "default":
            with_planner = (path.detector_cpu_s + path.planner_cpu_s) / max(path.analysed, 1)
            print(
                f"regions: default CPU ratio {cpu_ratio:.3f} (target <= {TARGET_CPU_RATIO}) "
                f"{verdict(cpu_ratio <= TARGET_CPU_RATIO)}; recall ratio {recall_ratio:.3f} "
                f"(target >= {TARGET_RECALL_RATIO}) "
                f"{verdict(recall_ratio >= TARGET_RECALL_RATIO)}; with planning, cropping "
                f"and merging counted: CPU ratio {with_planner / full_cpu:.3f}",
                flush=True,
            )


def run(model_path: Path) -> None:
    video = sample_video()
    camera = CameraConfig(id="bench-regions", source=str(video), realtime=False)
    settings: RegionSettings = camera.regions
    configs = candidate_configs(settings.region_config(FULL_SIZE))
    print(
        f"regions: PETS09-S2L1 frames 1-{LAST_FRAME} sampled at {camera.detect_fps:g} fps, "
        f"bare YoloOnnx (1 thread); default regions {configs['default']}",
        flush=True,
    )
    paths = run_paths(video, model_path, configs, camera)
    report(paths, load_ground_truth())
