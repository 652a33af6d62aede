"""Ray Train against the bare loop: YOLOv8n fine-tuning samples/s, side by side in one run.

Both sides run the same train step (``sentinel.train.model``: the bundled YOLOv8n with a
one-class head, frozen backbone, AdamW 2e-4, explicit torch threads) on the same samples
(frames of the sample video with the PETS09 boxes, frames 1-400 only, letterboxed and
encoded by ``sentinel.train.batching``):

- **plain**: a Python loop over numpy batches in this process;
- **ray**: a ``TorchTrainer`` with one worker reading the samples as a Ray Dataset shard
  (``get_dataset_shard``), a checkpoint per epoch, exactly as ``sentinel.actors.training``.

The sides take turns, one epoch each, the order alternating from round to round (a named
actor hands the turn to the worker, whose ``fit`` runs beside the driver's loop): each round
gives one Ray/plain ratio from two adjacent epochs, and the verdict is the median of those,
robust to a burst of other work hitting one epoch. Samples/s are counted inside each epoch
after the warm-up one, so start-up is not part of either figure; the Ray side's epoch includes
starting its shard's iterator, and the share of it spent waiting for batches is printed.
Target: Ray >= 0.9x plain. ``python -m benchmarks training``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from numpy.typing import NDArray

from benchmarks.common import init_ray, median, rgb_frames, sample_video, verdict

GT_FILE = Path(__file__).resolve().parent / "data" / "pets09-s2l1-gt-0001-0400.txt"
FRAMES = 48  # frames 1..384, every 8th
EVERY = 8
SIZE = 320
BATCH = 8
WARMUP = 1  # epochs per side before the timed rounds
ROUNDS = 8
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


def _epoch(model: Any, optimizer: Any, batches: Any, device: Any) -> tuple[int, float, float]:
    """One pass over ``batches``: samples, seconds, and the seconds spent waiting for data."""
    from sentinel.train.batching import collate
    from sentinel.train.model import to_torch, train_mode, train_step

    train_mode(model)
    count, waited, began = 0, 0.0, time.perf_counter()
    iterator = iter(batches)
    while True:
        asked = time.perf_counter()
        batch = next(iterator, None)
        waited += time.perf_counter() - asked
        if batch is None:
            break
        train_step(model, optimizer, to_torch(collate(batch["image"], batch["targets"]), device))
        count += len(batch["image"])
    return count, time.perf_counter() - began, waited


@dataclass
class _Pass:
    samples: int
    seconds: float
    waited: float = 0.0

    @property
    def rate(self) -> float:
        return self.samples / self.seconds


def _plain_model() -> tuple[Any, Any]:
    from sentinel.train.model import TrainConfig, build_model, make_optimizer, set_threads

    set_threads(THREADS)
    model = build_model(["person"])
    return model, make_optimizer(model, TrainConfig())


def plain_epoch(
    model: Any, optimizer: Any, images: NDArray[np.uint8], targets: NDArray[np.float32]
) -> _Pass:
    """One epoch of the bare loop over numpy batches, in this process."""
    import torch

    batches = (
        {"image": images[i : i + BATCH], "targets": targets[i : i + BATCH]}
        for i in range(0, len(images), BATCH)
    )
    n, s, w = _epoch(model, optimizer, batches, torch.device("cpu"))
    return _Pass(n, s, w)


@ray.remote(num_cpus=0)
class Baton:
    """Hands the turn between the driver's plain epochs and the Ray Train worker's epochs."""

    def __init__(self) -> None:
        self._go: dict[int, asyncio.Event] = {}
        self._done: dict[int, asyncio.Event] = {}
        self._passes: dict[int, tuple[int, float, float]] = {}

    def _event(self, table: dict[int, asyncio.Event], turn: int) -> asyncio.Event:
        return table.setdefault(turn, asyncio.Event())

    async def go(self, turn: int) -> None:
        self._event(self._go, turn).set()

    async def wait_go(self, turn: int) -> None:
        await self._event(self._go, turn).wait()

    async def finish(self, turn: int, samples: int, seconds: float, waited: float) -> None:
        self._passes[turn] = (samples, seconds, waited)
        self._event(self._done, turn).set()

    async def result(self, turn: int) -> tuple[int, float, float]:
        await self._event(self._done, turn).wait()
        return self._passes[turn]


def _ray_loop(config: dict[str, Any]) -> None:
    """The worker: one epoch per turn the driver gives, a checkpoint after each (untimed)."""
    import ray.train
    import torch

    from sentinel.train.model import (
        TrainConfig,
        build_model,
        make_optimizer,
        save_checkpoint,
        set_threads,
    )

    baton = config["baton"]
    set_threads(THREADS)
    model = build_model(["person"])
    optimizer = make_optimizer(model, TrainConfig())
    shard = ray.train.get_dataset_shard("train")
    for turn in range(config["turns"]):
        ray.get(baton.wait_go.remote(turn))
        batches = shard.iter_batches(batch_size=BATCH, batch_format="numpy")
        n, s, w = _epoch(model, optimizer, batches, torch.device("cpu"))
        ray.get(baton.finish.remote(turn, n, s, w))
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(
                Path(folder) / "model.pt", model, epoch=turn + 1, step=0,
                labels=["person"], input_size=SIZE,
            )  # fmt: skip
            ray.train.report(
                {"epoch": turn + 1}, checkpoint=ray.train.Checkpoint.from_directory(folder)
            )


def compare(
    images: NDArray[np.uint8], targets: NDArray[np.float32]
) -> tuple[list[_Pass], list[_Pass]]:
    """Paired epochs: plain and Ray Train take turns (the order alternating), so a burst of
    other work on the machine hits one round's pair, not a whole side."""
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = [{"image": i, "targets": t} for i, t in zip(images, targets, strict=True)]
    ds = ray.data.from_items(rows).materialize()
    baton = Baton.remote()  # type: ignore[attr-defined]
    turns = WARMUP + ROUNDS
    model, optimizer = _plain_model()
    plains: list[_Pass] = []
    rays: list[_Pass] = []
    with (
        tempfile.TemporaryDirectory(prefix="sentinel-bench-train-") as storage,
        ThreadPoolExecutor(1) as pool,
    ):
        trainer = TorchTrainer(
            _ray_loop,
            train_loop_config={"baton": baton, "turns": turns},
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="bench", storage_path=storage),
            datasets={"train": ds},
        )
        fit = pool.submit(trainer.fit)
        for turn in range(turns):
            for side in ("plain", "ray") if turn % 2 == 0 else ("ray", "plain"):
                if side == "plain":
                    done = plain_epoch(model, optimizer, images, targets)
                    if turn >= WARMUP:
                        plains.append(done)
                    continue
                ray.get(baton.go.remote(turn))
                ref = baton.result.remote(turn)
                while True:  # a worker that died fails the fit: stop waiting then
                    ready, _ = ray.wait([ref], timeout=5.0)
                    if ready:
                        break
                    if fit.done():
                        fit.result()
                        raise RuntimeError("the Ray Train run ended before its epochs")
                n, s, w = ray.get(ref)
                if turn >= WARMUP:
                    rays.append(_Pass(n, s, w))
            if turn >= WARMUP:
                print(
                    f"training: round {turn - WARMUP + 1}: plain {plains[-1].rate:.2f} "
                    f"samples/s, Ray Train {rays[-1].rate:.2f} samples/s",
                    flush=True,
                )
        fit.result()
    return plains, rays


def run(_model: Path) -> None:
    with contextlib.redirect_stdout(sys.stderr):
        images, targets = samples()
    print(
        f"training: {len(images)} frames at {SIZE} px, batch {BATCH}, {WARMUP} warm-up + "
        f"{ROUNDS} paired epochs per side, {THREADS} torch threads",
        flush=True,
    )
    init_ray("sentinel-bench-training")
    try:
        plains, rays = compare(images, targets)
    finally:
        ray.shutdown()
    per_round = [r.rate / p.rate for p, r in zip(plains, rays, strict=True)]
    ratio = median(per_round)
    plain_rate = sum(p.samples for p in plains) / sum(p.seconds for p in plains)
    ray_rate = sum(r.samples for r in rays) / sum(r.seconds for r in rays)
    waited = sum(r.waited for r in rays) / sum(r.seconds for r in rays)
    print(f"plain torch loop: {plain_rate:.2f} samples/s", flush=True)
    print(
        f"Ray Train (1 worker): {ray_rate:.2f} samples/s "
        f"({100 * waited:.1f}% of its epochs waiting for the dataset shard)",
        flush=True,
    )
    print(f"training: per-round ratios {', '.join(f'{r:.2f}' for r in per_round)}")
    print(
        f"Ray Train / plain: {ratio:.2f}x (median of paired rounds; target >= {TARGET}x: "
        f"{verdict(ratio >= TARGET)}); ratio of totals {ray_rate / plain_rate:.2f}x"
    )
