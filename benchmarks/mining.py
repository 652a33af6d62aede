"""Hard-example mining against evenly spaced frames, on frames 1-400 of the sample video only.

A cheap proxy for what 50 frames are worth to a fine-tune: how many errors the pretrained
detector makes on them (false positives plus misses, persons, IoU 0.5, at its operating
threshold 0.25, against the PETS09 ground truth; a detection on an ignore region counts as
neither). The miner picks 50 frames from its low-threshold scan (every frame, as the job does
at ``sample_fps=10``); the baseline takes 50 evenly spaced ones. Prints errors per frame for
both, for all 400 frames, and the miner/baseline ratio. Frames 401-795 are never read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import sample_video, verdict
from sentinel.config import MiningSettings
from sentinel.domain.annotation import LabeledBox, iou
from sentinel.domain.types import Detection
from sentinel.models.yolo import YoloOnnx
from sentinel.train.mine_job import ChunkScan, choose, scan_chunk, video_chunks
from sentinel.train.mining import MiningParams
from sentinel.train.simulated import LAST_ANSWERABLE_FRAME, GroundTruth, load_ground_truth

GROUND_TRUTH = Path(__file__).with_name("data") / "pets09-s2l1-gt-0001-0400.txt"
BUDGET = 50
THRESHOLD = 0.25
MATCH_IOU = 0.5
NEAR_BAND = MiningSettings().near_band  # the job's default
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame_errors(
    detections: Sequence[Detection],
    persons: Sequence[LabeledBox],
    ignored: Sequence[LabeledBox] = (),
    *,
    threshold: float = THRESHOLD,
) -> tuple[int, int]:
    """``(false positives, misses)`` of one frame: person detections at ``threshold`` matched
    greedily (highest score first) to ground-truth persons at IoU >= 0.5; an unmatched
    detection on an ignore region is not a false positive."""
    boxes = sorted(
        (d for d in detections if d.label == "person" and d.score >= threshold),
        key=lambda d: -d.score,
    )
    free = list(persons)
    false_positives = 0
    for d in boxes:
        box = LabeledBox("person", d.box.x1, d.box.y1, d.box.x2, d.box.y2)
        best = max(free, key=lambda g: iou(box, g), default=None)
        if best is not None and iou(box, best) >= MATCH_IOU:
            free.remove(best)
        elif not any(iou(box, g) >= MATCH_IOU for g in ignored):
            false_positives += 1
    return false_positives, len(free)


def errors_per_frame(
    indices: Sequence[int], found: dict[int, tuple[Detection, ...]], truth: GroundTruth
) -> float:
    total = 0
    for i in indices:
        fp, miss = frame_errors(found[i], truth.persons.get(i, ()), truth.ignored.get(i, ()))
        total += fp + miss
    return total / len(indices)


def evenly_spaced(count: int, frames: int) -> list[int]:
    return [round(k * frames / count) for k in range(count)]


def run(model_path: Path) -> None:
    truth = load_ground_truth(GROUND_TRUTH)
    model = YoloOnnx(model_path, conf_threshold=0.05, threads=2)
    chunks = video_chunks(
        sample_video(), "pets", T0, frames=795, fps=10.0, last=LAST_ANSWERABLE_FRAME
    )
    start = time.monotonic()
    scans: list[ChunkScan] = [
        scan_chunk(c, lambda c: Path(c.location), model.detect, sample_fps=10.0) for c in chunks
    ]
    scan_s = time.monotonic() - start
    found = {f.position: f.detections for s in scans for f in s.frames}
    assert max(found) < LAST_ANSWERABLE_FRAME, "the benchmark read a held-out frame"
    params = MiningParams(threshold=THRESHOLD, band=NEAR_BAND, labels=frozenset({"person"}))
    chosen = choose(scans, BUDGET, params)
    mined = [m.frame.frame_index for m in chosen if m.frame.frame_index is not None]
    uniform = evenly_spaced(BUDGET, LAST_ANSWERABLE_FRAME)
    every = sorted(found)
    miner_rate = errors_per_frame(mined, found, truth)
    uniform_rate = errors_per_frame(uniform, found, truth)
    all_rate = errors_per_frame(every, found, truth)
    ratio = miner_rate / uniform_rate if uniform_rate else float("inf")
    reasons = Counter(r for m in chosen for r in m.reasons)
    print(f"scanned {len(found)} frames (1-400) at threshold 0.05 in {scan_s:.0f} s")
    print(f"miner: {len(mined)} frames (near band {NEAR_BAND}), reasons {dict(reasons)}")
    print(f"errors per frame (FP + misses, persons, IoU {MATCH_IOU}, threshold {THRESHOLD}):")
    print(f"  miner's {len(mined)} frames       {miner_rate:.3f}")
    print(f"  {len(uniform)} evenly spaced frames  {uniform_rate:.3f}")
    print(f"  all {len(every)} frames            {all_rate:.3f}")
    print(f"miner / evenly spaced: {ratio:.2f}x (target > 1: {verdict(ratio > 1.0)})")
