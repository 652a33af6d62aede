"""Tracking quality of the product's pipeline on PETS09-S2L1, frames 1-400, against ground truth.

What runs: :class:`CameraRunner` over the first ``LAST_FRAME`` frames of the sample clip with a
default :class:`CameraConfig` (``realtime=False``; defaults: ``detect_fps`` 5, motion gate on,
``min_score`` 0.4, default tracker and events), the detector being the bare :class:`YoloOnnx`
runner called in a worker thread, as in ``benchmarks/pipeline.py``. The pipeline is the real
:class:`FramePipeline`, subclassed only to record what it saw and output.

Definitions (all on the *analysed frames*: the sampled frames the motion gate sent to the
detector; ground-truth frame N is the N-th decoded frame):
  * ground truth: the person boxes of ``benchmarks/data/pets09-s2l1-gt-0001-0400.txt``; boxes
    with flag 0 are "ignore" regions: a box (track or detection) whose best IoU with a flag-0
    box is >= 0.5 and above its IoU with every flag-1 box is dropped before scoring.
  * bare detector: the raw person detections scoring >= the pipeline's ``min_score``.
  * tracks: the confirmed person tracks matched in that frame (what the runner draws on the
    live preview: confirmed and not lost), with their track ids.
  * MOTA, IDF1, ID switches, precision and recall: ``motmetrics`` (py-motmetrics), IoU >= 0.5;
    the bare detector is scored the same way with a fresh id per box (so only its precision
    and recall mean something).
  * recall ratio: recall of the tracks / recall of the bare detector.
  * events per true track: person events the pipeline opened (OPENED changes) / ground-truth
    tracks with at least one flag-1 box in the analysed frames. Every person event counts,
    also those of people the ground truth leaves out (it does not annotate the far footpath at
    the top of the view). Also shown: distinct confirmed track ids matched to a ground-truth
    person, per true track.

Targets (issue): events per true track <= 1.3, recall ratio >= 0.97, precision of the tracks
>= that of the bare detector.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import motmetrics as mm
import numpy as np
from numpy.typing import NDArray

from benchmarks.common import sample_video, verdict
from sentinel.actors.runner import CameraRunner, DetectFn, DetectInputsFn
from sentinel.config import CameraConfig
from sentinel.domain.boxes import ModelInput
from sentinel.domain.motion import MotionDecision
from sentinel.domain.pipeline import FramePipeline, PipelineConfig
from sentinel.domain.types import Box, Detection, DetectResult, EventChange, EventChangeKind
from sentinel.models.yolo import YoloOnnx
from sentinel.video.source import DecodedFrame, VideoSource

GT_FILE = Path(__file__).parent / "data" / "pets09-s2l1-gt-0001-0400.txt"
LAST_FRAME = 400
LABEL = "person"
MATCH_IOU = 0.5
TARGET_EVENTS_PER_TRACK = 1.3
TARGET_RECALL_RATIO = 0.97

# (x, y, w, h) boxes of one frame, as motmetrics takes them.
Boxes = NDArray[np.float64]


@dataclass
class GroundTruth:
    """Per frame (from 1): flag-1 ids and boxes, and flag-0 (ignore) boxes."""

    ids: dict[int, list[int]] = field(default_factory=dict)
    boxes: dict[int, list[list[float]]] = field(default_factory=dict)
    ignore: dict[int, list[list[float]]] = field(default_factory=dict)


def load_ground_truth(path: Path = GT_FILE) -> GroundTruth:
    """Reads a MOTChallenge ground-truth file (``frame,id,x,y,w,h,flag,...``)."""
    gt = GroundTruth()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        cols = line.split(",")
        frame, track = int(cols[0]), int(cols[1])
        box = [float(v) for v in cols[2:6]]
        if int(float(cols[6])) == 0:
            gt.ignore.setdefault(frame, []).append(box)
        else:
            gt.ids.setdefault(frame, []).append(track)
            gt.boxes.setdefault(frame, []).append(box)
    return gt


@dataclass
class FrameRecord:
    """What the pipeline saw and output for one analysed frame."""

    frame: int
    detections: list[Box]
    tracks: list[tuple[int, Box]]


class _FirstFrames(VideoSource):
    """A file source that ends after ``limit`` frames and notes each frame's number by ts."""

    def __init__(self, source: str, *, limit: int, frame_of: dict[float, int], **kw: Any) -> None:
        super().__init__(source, **kw)
        self._limit, self._frame_of = limit, frame_of

    def frames(self) -> Iterator[DecodedFrame]:
        for item in super().frames():
            if item.index >= self._limit:
                return
            self._frame_of[item.ts] = item.index + 1
            yield item


class TrackingPipeline(FramePipeline):
    """The product's pipeline, recording detections, confirmed tracks and opened events."""

    def __init__(
        self, camera_id: str, epoch: str, config: PipelineConfig, frame_of: dict[float, int]
    ) -> None:
        super().__init__(camera_id, epoch, config)
        self.frame_of = frame_of
        self.current_ts = 0.0
        self.records: list[FrameRecord] = []
        self.skipped = 0
        self.events_opened = 0

    def wants_detection(
        self, gray_small: NDArray[np.uint8], ts: float, size: tuple[int, int] | None = None
    ) -> MotionDecision:
        self.current_ts = ts
        return super().wants_detection(gray_small, ts, size)

    def on_detections(
        self,
        detections: Sequence[Detection],
        ts: float,
        wall: datetime,
        frame: NDArray[np.uint8] | None = None,
    ) -> list[EventChange]:
        changes = super().on_detections(detections, ts, wall, frame)
        min_score = self.config.min_score
        self.records.append(
            FrameRecord(
                frame=self.frame_of[ts],
                detections=[d.box for d in detections if d.label == LABEL and d.score >= min_score],
                tracks=[
                    (t.id, t.box)
                    for t in self.active_tracks()
                    if t.label == LABEL and t.confirmed and not t.lost
                ],
            )
        )
        self._count(changes)
        return changes

    def on_skipped(self, ts: float, wall: datetime) -> list[EventChange]:
        self.skipped += 1
        changes = super().on_skipped(ts, wall)
        self._count(changes)
        return changes

    def _count(self, changes: Sequence[EventChange]) -> None:
        self.events_opened += sum(
            1 for c in changes if c.kind is EventChangeKind.OPENED and c.event.label == LABEL
        )


class _NullSink:
    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        del changes, rgb


def model_detector(model: YoloOnnx) -> DetectFn:
    """The bare ONNX runner as the runner's detect function (one frame per call)."""

    async def detect(rgb: NDArray[np.uint8]) -> DetectResult:
        start = time.perf_counter()
        dets = (await asyncio.to_thread(model.detect, [rgb]))[0]
        return DetectResult(dets, 1, (time.perf_counter() - start) * 1000.0)

    return detect


def model_inputs_detector(model: YoloOnnx) -> DetectInputsFn:
    """The bare ONNX runner on prepared inputs (motion regions' crops), one call per frame."""

    async def detect(inputs: Sequence[ModelInput]) -> list[DetectResult]:
        start = time.perf_counter()
        found = await asyncio.to_thread(model.detect_prepared, inputs)
        ms = (time.perf_counter() - start) * 1000.0
        return [DetectResult(dets, len(inputs), ms) for dets in found]

    return detect


async def run_pipeline(
    video: Path,
    detect: Callable[[TrackingPipeline], DetectFn],
    camera: CameraConfig | None = None,
    last_frame: int = LAST_FRAME,
    detect_inputs: DetectInputsFn | None = None,
) -> TrackingPipeline:
    """Runs the camera loop over the first ``last_frame`` frames; returns what it recorded.

    Args:
        video: The clip.
        detect: Makes the detect function, given the pipeline (whose ``current_ts`` is the
            stream time of the frame being detected).
        camera: Camera settings; default: the defaults with ``realtime=False``.
        last_frame: Frames decoded.
        detect_inputs: Detection on prepared crops: with it, the camera's motion regions are
            used as in the product (``camera.regions``); without, whole frames.
    """
    camera = camera or CameraConfig(id="bench-tracking", source=str(video), realtime=False)
    frame_of: dict[float, int] = {}
    pipeline = TrackingPipeline(camera.id, "bench", camera.pipeline_config(), frame_of)

    def source(src: str, **kw: Any) -> VideoSource:
        return _FirstFrames(src, limit=last_frame, frame_of=frame_of, **kw)

    runner = CameraRunner(
        camera,
        detect=detect(pipeline),
        detect_inputs=detect_inputs,
        sink=_NullSink(),
        epoch="bench",
        source_factory=source,
    )
    runner.pipeline = pipeline
    state = await runner.run()
    if str(state) != "finished":
        raise RuntimeError(f"camera run ended {state}: {runner.stats.last_error}")
    return pipeline


def _xywh(boxes: Sequence[Box]) -> Boxes:
    return np.array([[b.x1, b.y1, b.width, b.height] for b in boxes], dtype=np.float64).reshape(
        -1, 4
    )


def iou_distances(objs: Boxes, hyps: Boxes, max_distance: float) -> Boxes:
    """``motmetrics.distances.iou_matrix`` (1 - IoU, NaN above ``max_distance``), by its own
    ``boxiou``: ``iou_matrix`` itself calls ``np.asfarray``, gone since NumPy 2.0."""
    if len(objs) == 0 or len(hyps) == 0:
        return np.empty((len(objs), len(hyps)))
    dist = 1.0 - mm.distances.boxiou(objs[:, None], hyps[None, :])
    return np.asarray(np.where(dist > max_distance, np.nan, dist), dtype=np.float64)


def _not_ignored(hyps: Boxes, gt: Boxes, ignore: Boxes) -> NDArray[np.bool_]:
    """Mask of the hypotheses not explained by an ignore region better than by a true box."""
    keep = np.ones(len(hyps), dtype=bool)
    if len(hyps) == 0 or len(ignore) == 0:
        return keep
    best_ignore = (1.0 - iou_distances(ignore, hyps, 1.0)).max(axis=0)
    best_gt = np.zeros(len(hyps))
    if len(gt):
        best_gt = (1.0 - iou_distances(gt, hyps, 1.0)).max(axis=0)
    return np.asarray(~((best_ignore >= MATCH_IOU) & (best_ignore > best_gt)), dtype=np.bool_)


@dataclass
class Scores:
    """The figures of one run."""

    summary: dict[str, float]
    bare_precision: float
    bare_recall: float
    true_tracks: int
    matched_track_ids: int
    events_opened: int
    frames: int
    skipped: int

    @property
    def events_per_track(self) -> float:
        return self.events_opened / self.true_tracks if self.true_tracks else float("nan")

    @property
    def recall_ratio(self) -> float:
        return self.summary["recall"] / self.bare_recall if self.bare_recall else float("nan")


def score(pipeline: TrackingPipeline, gt: GroundTruth) -> Scores:
    """Scores the tracks and the bare detector of a run against the ground truth."""
    tracks_acc = mm.MOTAccumulator(auto_id=False)
    bare_acc = mm.MOTAccumulator(auto_id=False)
    true_tracks: set[int] = set()
    next_det_id = 1
    for rec in pipeline.records:
        gt_ids = gt.ids.get(rec.frame, [])
        gt_boxes = np.array(gt.boxes.get(rec.frame, []), dtype=np.float64).reshape(-1, 4)
        ignore = np.array(gt.ignore.get(rec.frame, []), dtype=np.float64).reshape(-1, 4)
        true_tracks.update(gt_ids)
        track_boxes = _xywh([b for _, b in rec.tracks])
        keep = _not_ignored(track_boxes, gt_boxes, ignore)
        track_ids = [tid for (tid, _), k in zip(rec.tracks, keep, strict=True) if k]
        track_boxes = track_boxes[keep]
        tracks_acc.update(
            gt_ids,
            track_ids,
            iou_distances(gt_boxes, track_boxes, 1.0 - MATCH_IOU),
            frameid=rec.frame,
        )
        det_boxes = _xywh(rec.detections)
        det_boxes = det_boxes[_not_ignored(det_boxes, gt_boxes, ignore)]
        det_ids = list(range(next_det_id, next_det_id + len(det_boxes)))
        next_det_id += len(det_boxes)
        bare_acc.update(
            gt_ids,
            det_ids,
            iou_distances(gt_boxes, det_boxes, 1.0 - MATCH_IOU),
            frameid=rec.frame,
        )
    mh = mm.metrics.create()
    names = ["mota", "idf1", "num_switches", "precision", "recall", "num_fragmentations"]
    tracks = mh.compute(tracks_acc, metrics=names, name="tracks")
    bare = mh.compute(bare_acc, metrics=["precision", "recall"], name="bare")
    events = tracks_acc.mot_events
    matched_ids = events.loc[events["Type"].isin(["MATCH", "SWITCH"]), "HId"].nunique()
    return Scores(
        summary={name: float(tracks.loc["tracks", name]) for name in names},
        bare_precision=float(bare.loc["bare", "precision"]),
        bare_recall=float(bare.loc["bare", "recall"]),
        true_tracks=len(true_tracks),
        matched_track_ids=int(matched_ids),
        events_opened=pipeline.events_opened,
        frames=len(pipeline.records),
        skipped=pipeline.skipped,
    )


def report(s: Scores, path: str = "whole frames") -> None:
    m = s.summary
    print(f"tracking: -- detector on {path}")
    print(
        f"tracking: PETS09-S2L1 frames 1-{LAST_FRAME}, {s.frames} analysed frames "
        f"({s.skipped} sampled frames skipped by the motion gate), {s.true_tracks} true tracks"
    )
    print(
        f"tracking: MOTA {m['mota']:.3f}, IDF1 {m['idf1']:.3f}, ID switches "
        f"{m['num_switches']:.0f}, fragmentations {m['num_fragmentations']:.0f} (motmetrics, "
        f"IoU >= {MATCH_IOU})"
    )
    print(
        f"tracking: {LABEL} events per true track {s.events_per_track:.2f} "
        f"({s.events_opened} events opened / {s.true_tracks} true tracks) "
        f"(target <= {TARGET_EVENTS_PER_TRACK}) "
        f"{verdict(s.events_per_track <= TARGET_EVENTS_PER_TRACK)}; confirmed track ids "
        f"matched to a true person: {s.matched_track_ids} "
        f"({s.matched_track_ids / max(s.true_tracks, 1):.2f} per true track)"
    )
    print(
        f"tracking: recall of confirmed tracks {m['recall']:.3f} vs bare detector "
        f"{s.bare_recall:.3f}: ratio {s.recall_ratio:.3f} (target >= {TARGET_RECALL_RATIO}) "
        f"{verdict(s.recall_ratio >= TARGET_RECALL_RATIO)}"
    )
    print(
        f"tracking: precision of confirmed tracks {m['precision']:.3f} vs bare detector "
        f"{s.bare_precision:.3f} (target: not below) "
        f"{verdict(m['precision'] >= s.bare_precision)}"
    )


def run(model_path: Path) -> None:
    video = sample_video()
    model = YoloOnnx(model_path, threads=2)
    print("tracking: detector = bare YoloOnnx (2 threads), batch 1, no Serve", flush=True)
    truth = load_ground_truth()
    pipeline = asyncio.run(run_pipeline(video, lambda _: model_detector(model)))
    report(score(pipeline, truth))
    # The camera's default path: motion regions (crops around motion and tracks).
    pipeline = asyncio.run(
        run_pipeline(
            video, lambda _: model_detector(model), detect_inputs=model_inputs_detector(model)
        )
    )
    report(score(pipeline, truth), "motion regions (the camera's default)")
