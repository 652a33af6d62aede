"""Detector throughput: the Serve-batched deployment through its handle vs. bare ONNX Runtime.

Both sides run the same model with the same runner (:class:`YoloOnnx`), 2 intra-op threads
(sleeping, not spinning, between parallel sections: ``detector.spin_wait``'s default) and
batches of 4, on the same real frames of the sample clip. The passes alternate in one process
and one Ray cluster, so load from anything else on the machine hits all sides alike.

The served path is the cameras' path: the caller letterboxes each frame into a uint8 input
(:func:`letterbox_u8`, as a camera actor does on its own core) and sends it to
``Detector.detect_inputs``, keeping ``IN_FLIGHT`` requests outstanding from an asyncio driver so
``@serve.batch`` has a batch waiting. The bare side calls ``YoloOnnx.detect`` (letterbox and
all) on consecutive lists of ``BATCH`` frames. For the record, the old path — whole frames to
``Detector.detect``, letterboxed on the replica — is timed as a third side ("raw").

Other work on the machine comes in bursts, so passes are short and paired: each round gives one
serve/bare ratio from two adjacent passes, and the verdict uses the median of those ratios
(robust to a burst hitting one pass). The ratio of total throughputs is printed too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import init_ray, median, rgb_frames, sample_video, verdict
from sentinel.config import DetectorSettings
from sentinel.domain.boxes import letterbox_u8
from sentinel.domain.types import DetectResult
from sentinel.models.yolo import YoloOnnx
from sentinel.serve.detector import build_detector

TARGET_RATIO = 0.95
THREADS = 2
BATCH = 4
IN_FLIGHT = 2 * BATCH
FRAMES = 16  # per pass: 4 batches, ~1-3 s on 2 cores
FRAME_STRIDE = 10  # every 10th frame of the clip: varied scenes, not 16 near-copies
ROUNDS = 16  # the sides' order rotates from round to round
MIN_ROUNDS = 6
BUDGET_S = 120.0  # no new round after this (a loaded machine): keeps the run under ~3 min


@dataclass
class _Side:
    frames: int = 0
    seconds: float = 0.0
    per_pass: list[float] = field(default_factory=list)

    def add(self, frames: int, seconds: float) -> None:
        self.frames += frames
        self.seconds += seconds
        self.per_pass.append(frames / seconds)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def _bare_pass(model: YoloOnnx, frames: list[NDArray[np.uint8]]) -> float:
    start = time.perf_counter()
    for i in range(0, len(frames), BATCH):
        model.detect(frames[i : i + BATCH])
    return time.perf_counter() - start


async def _serve_pass(
    handle: Any, frames: list[NDArray[np.uint8]], *, prepared: bool = True, size: int = 640
) -> tuple[float, list[DetectResult]]:
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(frame: NDArray[np.uint8]) -> DetectResult:
        async with sem:
            if not prepared:
                raw: DetectResult = await handle.detect.remote(frame)
                return raw
            results: list[DetectResult] = await handle.detect_inputs.remote(
                [letterbox_u8(frame, size)]
            )
            return results[0]

    start = time.perf_counter()
    results = await asyncio.gather(*(one(f) for f in frames))
    return time.perf_counter() - start, list(results)


async def _compare(handle: Any, model: YoloOnnx, frames: list[NDArray[np.uint8]]) -> None:
    # Warm-up: first calls allocate arenas, build the router, fill caches.
    _bare_pass(model, frames[: 2 * BATCH])
    await _serve_pass(handle, frames[: 2 * IN_FLIGHT])

    await _serve_pass(handle, frames[: 2 * IN_FLIGHT], prepared=False)
    bare, served, raw = _Side(), _Side(), _Side()
    batch_sizes: list[int] = []
    deadline = time.monotonic() + BUDGET_S
    for rnd in range(ROUNDS):
        if rnd >= MIN_ROUNDS and time.monotonic() > deadline:
            print(f"detector: time budget spent, stopping after {rnd} rounds", flush=True)
            break
        sides = ("bare", "serve", "raw")
        for side in sides[rnd % 3 :] + sides[: rnd % 3]:
            if side == "bare":
                bare.add(len(frames), _bare_pass(model, frames))
            elif side == "serve":
                seconds, results = await _serve_pass(handle, frames, size=model.input_size)
                served.add(len(frames), seconds)
                batch_sizes += [r.batch_size for r in results]
            else:
                seconds, _ = await _serve_pass(handle, frames, prepared=False)
                raw.add(len(frames), seconds)
        print(
            f"detector: round {rnd + 1}: serve {served.per_pass[-1]:.1f} frames/s, "
            f"bare {bare.per_pass[-1]:.1f} frames/s, raw {raw.per_pass[-1]:.1f} frames/s",
            flush=True,
        )

    total_ratio = served.fps / bare.fps
    per_round = [s / b for s, b in zip(served.per_pass, bare.per_pass, strict=True)]
    ratio = median(per_round)
    raw_ratio = median([r / b for r, b in zip(raw.per_pass, bare.per_pass, strict=True)])
    per_request = float(np.mean(batch_sizes))
    batches = sum(1.0 / b for b in batch_sizes)  # a batch of n answers n requests
    per_batch = len(batch_sizes) / batches
    print(
        f"detector: serve {served.fps:.1f} frames/s, bare {bare.fps:.1f} frames/s, "
        f"ratio {ratio:.2f} (median of paired rounds; target >= {TARGET_RATIO}) "
        f"{verdict(ratio >= TARGET_RATIO)}; ratio of totals {total_ratio:.2f}"
    )
    print(
        f"detector: raw path (whole frames, letterboxed on the replica) {raw.fps:.1f} frames/s, "
        f"ratio {raw_ratio:.2f} to bare"
    )
    print(
        f"detector: per-round ratios {', '.join(f'{r:.2f}' for r in per_round)}; "
        f"{len(frames)} frames x {len(per_round)} passes per side, batch {BATCH}, "
        f"{THREADS} threads, {IN_FLIGHT} requests in flight"
    )
    print(
        f"detector: serve mean batch size {per_batch:.2f} per batch "
        f"({per_request:.2f} as seen per request; max {BATCH})"
    )


def run(model_path: Path) -> None:
    import ray
    from ray import serve

    frames = rgb_frames(sample_video(), FRAMES, every=FRAME_STRIDE)
    settings = DetectorSettings(
        model_path=model_path, threads=THREADS, max_batch_size=BATCH, num_cpus=0
    )
    model = YoloOnnx(
        model_path,
        labels=settings.labels,
        input_size=settings.input_size,
        threads=settings.threads,
        spin=settings.spin_wait,
        conf_threshold=settings.conf_threshold,
        iou_threshold=settings.iou_threshold,
    )
    init_ray(f"sentinel-bench-{uuid.uuid4().hex[:8]}")
    try:
        serve.start(proxy_location="Disabled")
        handle = serve.run(
            build_detector(settings, model_path), name="bench-detector", route_prefix=None
        )
        asyncio.run(_compare(handle, model, frames))
    finally:  # the cluster is private to this run: shutting Ray down removes Serve with it
        ray.shutdown()
