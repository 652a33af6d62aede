"""Ray Train against the bare loop: YOLOv8n fine-tuning samples/s, side by side in one run.

Both sides run the same train step (``sentinel.train.model``: the bundled YOLOv8n with a
one-class head, frozen backbone, AdamW 2e-4, explicit torch threads) on the same samples
(frames of the sample video with the PETS09 boxes, frames 1-400 only, letterboxed and
encoded by ``sentinel.train.batching``):

- **plain**: a Python loop over numpy batches in this process;
- **ray**: a ``TorchTrainer`` with one worker reading the samples as a Ray Dataset shard
  (``get_dataset_shard``), a checkpoint per epoch, exactly as ``sentinel.actors.training``.

Samples/s are counted inside each loop over the epochs after the first (warm-up), so start-up
is not part of either figure. Target: Ray >= 0.9x plain. ``python -m benchmarks training``.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import init_ray, rgb_frames, sample_video, verdict

GT_FILE = Path(__file__).resolve().parent / "data" / "pets09-s2l1-gt-0001-0400.txt"
FRAMES = 48  # frames 1..384, every 8th
EVERY = 8
SIZE = 320
BATCH = 8
EPOCHS = 3
THREADS = 2
TARGET = 0.9


def _boxes_by_frame() -> dict[int, list[tuple[float, float, float, float]]]:
    out: dict[int, list[tuple[float, float, float, float]]] = {}
    for line in GT_FILE.read_text().splitlines():
        f = [float(v) for v in line.split(",")]
        frame, x, y, w, h, flag = int(f[0]), f[2], f[3], f[4], f[5], f[6]
        if flag == 0 or frame > 400:
            continue
        x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(768.0, x + w), min(576.0, y + h)
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            out.setdefault(frame, []).append((x1, y1, x2, y2))
    return out


def samples() -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """Letterboxed images (N, S, S, 3) and target tables (N, M, 5) of the benchmark frames."""
    from sentinel.train.batching import encode_sample

    truth = _boxes_by_frame()
    frames = rgb_frames(sample_video(), FRAMES, every=EVERY)
    numbers = [1 + i * EVERY for i in range(FRAMES)]
    max_boxes = max(len(truth.get(n, [])) for n in numbers) or 1
    images, targets = [], []
    for n, frame in zip(numbers, frames, strict=True):
        boxes = np.array(truth.get(n, []), dtype=np.float32).reshape(-1, 4)
        s = encode_sample(
            frame, boxes, np.zeros(len(boxes), np.int64), size=SIZE, max_boxes=max_boxes
        )
        images.append(s["image"])
        targets.append(s["targets"])
    return np.stack(images).astype(np.uint8), np.stack(targets).astype(np.float32)


def _epoch(model: Any, optimizer: Any, batches: Any, device: Any) -> tuple[int, float]:
    from sentinel.train.batching import collate
    from sentinel.train.model import to_torch, train_mode, train_step

    train_mode(model)
    count, began = 0, time.perf_counter()
    for batch in batches:
        train_step(model, optimizer, to_torch(collate(batch["image"], batch["targets"]), device))
        count += len(batch["image"])
    return count, time.perf_counter() - began


def plain(images: NDArray[np.uint8], targets: NDArray[np.float32]) -> float:
    """Samples/s of the bare loop (epochs after the first)."""
    import torch

    from sentinel.train.model import TrainConfig, build_model, make_optimizer, set_threads

    set_threads(THREADS)
    model = build_model(["person"])
    optimizer = make_optimizer(model, TrainConfig())
    device = torch.device("cpu")
    done, seconds = 0, 0.0
    for epoch in range(EPOCHS):
        batches = (
            {"image": images[i : i + BATCH], "targets": targets[i : i + BATCH]}
            for i in range(0, len(images), BATCH)
        )
        n, s = _epoch(model, optimizer, batches, device)
        if epoch > 0:
            done, seconds = done + n, seconds + s
    return done / seconds


def _ray_loop(config: dict[str, Any]) -> None:
    import ray.train
    import torch

    from sentinel.train.model import (
        TrainConfig,
        build_model,
        make_optimizer,
        save_checkpoint,
        set_threads,
    )

    set_threads(THREADS)
    model = build_model(["person"])
    optimizer = make_optimizer(model, TrainConfig())
    shard = ray.train.get_dataset_shard("train")
    done, seconds = 0, 0.0
    for epoch in range(EPOCHS):
        batches = shard.iter_batches(batch_size=BATCH, batch_format="numpy")
        n, s = _epoch(model, optimizer, batches, torch.device("cpu"))
        if epoch > 0:
            done, seconds = done + n, seconds + s
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(
                Path(folder) / "model.pt", model, epoch=epoch + 1, step=0,
                labels=["person"], input_size=SIZE,
            )  # fmt: skip
            ray.train.report(
                {"samples_per_s": done / seconds if seconds else 0.0},
                checkpoint=ray.train.Checkpoint.from_directory(folder),
            )


def on_ray(images: NDArray[np.uint8], targets: NDArray[np.float32]) -> float:
    """Samples/s of the same loop in a one-worker ``TorchTrainer`` (epochs after the first)."""
    import ray
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = [{"image": i, "targets": t} for i, t in zip(images, targets, strict=True)]
    ds = ray.data.from_items(rows).materialize()
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-train-") as storage:
        trainer = TorchTrainer(
            _ray_loop,
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="bench", storage_path=storage),
            datasets={"train": ds},
        )
        result = trainer.fit()
    if not result.metrics:
        raise RuntimeError("the Ray Train run reported no metrics")
    return float(result.metrics["samples_per_s"])


def run(_model: Path) -> None:
    import ray

    with contextlib.redirect_stdout(sys.stderr):
        images, targets = samples()
    print(
        f"training: {len(images)} frames at {SIZE} px, batch {BATCH}, {EPOCHS} epochs "
        f"(the first is warm-up), {THREADS} torch threads",
        flush=True,
    )
    bare = plain(images, targets)
    print(f"plain torch loop: {bare:.2f} samples/s", flush=True)
    init_ray("sentinel-bench-training")
    try:
        served = on_ray(images, targets)
    finally:
        ray.shutdown()
    ratio = served / bare
    print(f"Ray Train (1 worker): {served:.2f} samples/s", flush=True)
    print(f"Ray Train / plain: {ratio:.2f}x (target >= {TARGET}x: {verdict(ratio >= TARGET)})")
