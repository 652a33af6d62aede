"""One round of the learning loop on the sample video, measured by a time split of frames 1-400.

- **mine**: the pretrained detector scans frames 1-200 at the low threshold and the miner's own
  scoring (``sentinel.train.mine_job.choose``) picks <= 50 of them;
- **annotate**: the :class:`~sentinel.train.simulated.SimulatedAnnotator` draws their persons;
- **fine-tune**: the project's training pieces (``sentinel.train.model``: one-class YOLOv8n,
  frozen backbone, AdamW 2e-4, batch 8, explicit threads; ``augment`` and ``batching`` as the
  Ray Data pipeline applies them, fresh augmentation each epoch) in a plain torch loop at 640 px;
- **export**: ``sentinel.models.files.export_checkpoint`` to ONNX, run by ``YoloOnnx`` like the
  champion;
- **judge**: errors (false positives + misses, persons, IoU 0.5, serving threshold 0.25; a
  detection on an ignore region counts as neither) of the pretrained and the fine-tuned model on
  frames 201-400 (every 2nd).

The same fine-tune on 50 evenly spaced frames of 1-200 is the baseline. Target: the miner's round
cuts the errors by >= 20% against the pretrained model. Ground truth past frame 400 is never
read (``load_ground_truth`` refuses it). ``python -m benchmarks learning_loop``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from benchmarks.common import sample_video, verdict
from benchmarks.mining import BUDGET, GROUND_TRUTH, NEAR_BAND, T0, THRESHOLD, frame_errors
from sentinel.models.yolo import YoloOnnx
from sentinel.train.mine_job import ChunkScan, choose, scan_chunk, video_chunks
from sentinel.train.mining import MiningParams
from sentinel.train.simulated import GroundTruth, SimulatedAnnotator, load_ground_truth

TRAIN_FRAMES = 200  # frame indices 0..199 (frames 1-200): mined and trained on
EVAL_FIRST, EVAL_LAST, EVAL_EVERY = 200, 400, 2  # frames 201-400, every 2nd: judged on
SIZE = 640
BATCH = 8
EPOCHS = 20
THREADS = 2
SEED = 0
TARGET = 0.20
LABELS = ["person"]


def decode(indices: Sequence[int]) -> dict[int, NDArray[np.uint8]]:
    """The RGB frames at the given 0-based indices of the sample video (all below 400)."""
    wanted = set(indices)
    if max(wanted) >= EVAL_LAST:
        raise ValueError(f"frame index {max(wanted)} is past the measured frames 1-400")
    out: dict[int, NDArray[np.uint8]] = {}
    with av.open(str(sample_video())) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                out[index] = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            if index >= max(wanted):
                break
    return out


def mine(model_path: Path) -> tuple[list[int], float]:
    """The miner's <= 50 frame indices of frames 1-200, and the scan's seconds."""
    model = YoloOnnx(model_path, conf_threshold=0.05, threads=THREADS)
    chunks = video_chunks(sample_video(), "pets", T0, frames=795, fps=10.0, last=TRAIN_FRAMES)
    start = time.monotonic()
    scans: list[ChunkScan] = [
        scan_chunk(c, lambda c: Path(c.location), model.detect, sample_fps=10.0) for c in chunks
    ]
    seconds = time.monotonic() - start
    if max(f.position for s in scans for f in s.frames) >= TRAIN_FRAMES:
        raise RuntimeError("the miner scanned past frame 200")
    params = MiningParams(threshold=THRESHOLD, band=NEAR_BAND, labels=frozenset(LABELS))
    chosen = choose(scans, BUDGET, params)
    return sorted(m.frame.frame_index for m in chosen if m.frame.frame_index is not None), seconds


def labelled(
    indices: Sequence[int], frames: dict[int, NDArray[np.uint8]], annotator: SimulatedAnnotator
) -> list[tuple[NDArray[np.uint8], NDArray[np.float32]]]:
    """Each frame with the annotator's person boxes (xyxy pixels, clipped to the frame)."""
    out = []
    for i in indices:
        image = frames[i]
        h, w = image.shape[:2]
        rows = []
        for b in annotator.boxes(i):
            x1, y1 = max(0.0, b.x1), max(0.0, b.y1)
            x2, y2 = min(float(w), b.x2), min(float(h), b.y2)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                rows.append((x1, y1, x2, y2))
        out.append((image, np.array(rows, dtype=np.float32).reshape(-1, 4)))
    return out


def fine_tune(
    samples: Sequence[tuple[NDArray[np.uint8], NDArray[np.float32]]],
    folder: Path,
    *,
    epochs: int = EPOCHS,
) -> tuple[Path, list[float]]:
    """Fine-tune on ``samples``, export to ONNX in ``folder``; the file and per-epoch losses."""
    import torch

    from sentinel.models.files import export_checkpoint
    from sentinel.train.augment import AugmentConfig, augment
    from sentinel.train.batching import collate, encode_sample
    from sentinel.train.model import (
        TrainConfig,
        build_model,
        make_optimizer,
        save_checkpoint,
        set_threads,
        to_torch,
        train_mode,
        train_step,
    )

    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, input_size=SIZE, threads=THREADS, seed=SEED)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(LABELS, freeze_backbone=cfg.freeze_backbone)
    optimizer = make_optimizer(model, cfg)
    max_boxes = max(1, max(len(b) for _, b in samples))
    device = torch.device("cpu")
    losses: list[float] = []
    for _ in range(cfg.epochs):
        train_mode(model, freeze_backbone=cfg.freeze_backbone)
        order = rng.permutation(len(samples))
        total, steps = 0.0, 0
        for lo in range(0, len(order), cfg.batch_size):
            images, targets = [], []
            for k in order[lo : lo + cfg.batch_size]:
                image, boxes = samples[int(k)]
                classes = np.zeros(len(boxes), dtype=np.int64)
                img, b, c = augment(image, boxes, classes, rng, AugmentConfig())
                s = encode_sample(img, b, c, size=cfg.input_size, max_boxes=max_boxes)
                images.append(s["image"])
                targets.append(s["targets"])
            batch = collate(np.stack(images), np.stack(targets).astype(np.float32))
            total += train_step(model, optimizer, to_torch(batch, device))["loss"]
            steps += 1
        losses.append(total / max(steps, 1))
    checkpoint = folder / "model.pt"
    save_checkpoint(
        checkpoint, model, epoch=cfg.epochs, step=0, labels=LABELS, input_size=cfg.input_size
    )
    return export_checkpoint(checkpoint, folder / "model.onnx", imgsz=cfg.input_size), losses


def errors(
    model_path: Path, frames: dict[int, NDArray[np.uint8]], truth: GroundTruth
) -> tuple[int, int]:
    """(false positives, misses) of a model over ``frames`` at the serving threshold."""
    model = YoloOnnx(model_path, conf_threshold=THRESHOLD, threads=THREADS)
    fps, misses = 0, 0
    for i, frame in sorted(frames.items()):
        found = model.detect([frame])[0]
        fp, miss = frame_errors(found, truth.persons.get(i, ()), truth.ignored.get(i, ()))
        fps, misses = fps + fp, misses + miss
    return fps, misses


def _line(name: str, counts: tuple[int, int], base: int | None = None) -> str:
    total = sum(counts)
    cut = "" if base is None else f"  ({100 * (base - total) / base:.1f}% reduction)"
    return f"  {name:<28} {total:4d}  (FP {counts[0]}, misses {counts[1]}){cut}"


def run(model_path: Path) -> None:
    began = time.monotonic()
    truth = load_ground_truth(GROUND_TRUTH)  # refuses any frame past 400
    annotator = SimulatedAnnotator(truth)
    mined, scan_s = mine(model_path)
    uniform = sorted({round(k * TRAIN_FRAMES / BUDGET) for k in range(BUDGET)})
    held = list(range(EVAL_FIRST, EVAL_LAST, EVAL_EVERY))
    frames = decode(sorted(set(mined) | set(uniform) | set(held)))
    judged = {i: frames[i] for i in held}
    print(
        f"learning loop: mined {len(mined)} of frames 1-{TRAIN_FRAMES} in {scan_s:.0f} s; "
        f"fine-tune {EPOCHS} epochs at {SIZE} px, batch {BATCH}, {THREADS} threads; "
        f"judged on {len(held)} frames {EVAL_FIRST + 1}-{EVAL_LAST} (every {EVAL_EVERY}nd)",
        flush=True,
    )
    base = errors(model_path, judged, truth)
    results: dict[str, tuple[tuple[int, int], float, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-loop-") as tmp:
        for name, indices in (("miner", mined), ("uniform", uniform)):
            start = time.monotonic()
            folder = Path(tmp) / name
            onnx, losses = fine_tune(labelled(indices, frames, annotator), folder)
            seconds = time.monotonic() - start
            results[name] = (errors(onnx, judged, truth), seconds, losses)
            fp, miss = results[name][0]
            print(
                f"fine-tune ({name}): {seconds:.0f} s with export; loss "
                f"{losses[0]:.2f} -> {losses[-1]:.2f}; errors {fp + miss} (pretrained {sum(base)})",
                flush=True,
            )
    total = sum(base)
    print(
        f"errors on frames {EVAL_FIRST + 1}-{EVAL_LAST} (persons, IoU 0.5, threshold {THRESHOLD}):"
    )
    print(_line("pretrained", base))
    print(_line(f"fine-tuned (miner, {len(mined)})", results["miner"][0], total))
    print(_line(f"fine-tuned (uniform, {len(uniform)})", results["uniform"][0], total))
    cut = (total - sum(results["miner"][0])) / total if total else 0.0
    print(
        f"miner round: {100 * cut:.1f}% fewer errors "
        f"(target >= {100 * TARGET:.0f}%: {verdict(cut >= TARGET)})"
    )
    print(f"wall: scan {scan_s:.0f} s, total {time.monotonic() - began:.0f} s")
