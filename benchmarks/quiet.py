"""Quiet scenes: what a camera that sees only parked vehicles costs, gated vs. ungated.

The clip is the sample scene with its people removed (a temporal median of the video keeps the
parked van and car), ``QUIET_S`` seconds of it with lighting drift and sensor noise, then the
real busy frames, then ``QUIET_S`` seconds quiet again (:mod:`sentinel.video.synth`, H.264).

:class:`CameraRunner` (``realtime=False``, 5 fps analysed, no Ray) runs over it with the bare
:class:`YoloOnnx` detector (2 threads, one frame per call, in a worker thread), motion gate on
and off. Reported:

* detector calls over the quiet stretches, gated vs. ungated (target <= ``TARGET_CALLS``);
* person events lost: ungated person events no gated one matches (the rule of
  ``benchmarks/pipeline.py``: overlapping times and nearby boxes), target 0;
* parked-vehicle events split: vehicle events (car, truck, bus) are grouped by place (best boxes
  overlapping with IoU > ``SAME_PLACE_IOU``); each group with more than one event counts
  ``events - 1`` splits, target 0 (ungated figure printed alongside);
* CPU of the camera per stream second, quiet vs. busy, in the gated run: this process's CPU
  (``getrusage``, all threads: decode, conversions, gate, detector, tracking, event loop) is
  read at each frame's gate decision and summed over the busy stretch, and over the quiet
  stretches from the first frame the camera rests on its stationary vehicles (a camera in a
  quiet scene; the seconds before, while the vehicles settle, are printed apart). Target: quiet
  <= ``TARGET_CPU`` times busy. Where a quiet camera's CPU goes (decode, gray conversion, motion
  gate) is measured apart on the same clip's quiet frames and printed too.
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import sample_video, verdict
from benchmarks.pipeline import _ClockPipeline, _detector, _Event, _matches, _RecordingSink
from sentinel.actors.runner import CameraRunner
from sentinel.config import CameraConfig, MotionSettings
from sentinel.domain.motion import MotionDecision, MotionGate
from sentinel.models.yolo import YoloOnnx
from sentinel.video.sampling import FrameSampler
from sentinel.video.source import VideoSource, to_gray_small
from sentinel.video.synth import QuietClip, scene_background, write_quiet_clip

QUIET_S = 60.0
DETECT_FPS = 5.0
TARGET_CALLS = 0.3
TARGET_CPU = 0.2
PERSON = "person"
VEHICLES = frozenset({"car", "truck", "bus"})
SAME_PLACE_IOU = 0.5


class _DecisionPipeline(_ClockPipeline):
    """Also keeps each frame's gate decision (stream ts, detect, reason) and this process's
    CPU seconds when it was made."""

    decisions: list[tuple[float, bool, str]]
    cpu: list[float]

    def wants_detection(
        self, gray_small: NDArray[np.uint8], ts: float, size: tuple[int, int] | None = None
    ) -> MotionDecision:
        decision = super().wants_detection(gray_small, ts, size)
        self.decisions.append((ts, decision.detect, decision.reason))
        self.cpu.append(_cpu())
        return decision


@dataclass
class _Run:
    runner: CameraRunner
    pipeline: _DecisionPipeline
    events: list[_Event]
    cpu_s: float
    wall_s: float


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(model: YoloOnnx, clip: Path, *, gate: bool, name: str) -> _Run:
    camera = CameraConfig(
        id=name,
        source=str(clip),
        realtime=False,
        detect_fps=DETECT_FPS,
        motion=MotionSettings(enabled=gate),
    )
    sink = _RecordingSink()
    runner = CameraRunner(camera, detect=_detector(model), sink=sink, epoch="bench")
    pipeline = _DecisionPipeline(camera.id, "bench", camera.pipeline_config())
    pipeline.decisions, pipeline.cpu = [], []
    runner.pipeline = pipeline
    cpu, wall = _cpu(), time.perf_counter()
    state = await runner.run()
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    if str(state) != "finished" or pipeline.origin is None:
        raise RuntimeError(f"camera run ended {state}: {runner.stats.last_error}")
    return _Run(runner, pipeline, sink.events(pipeline.origin), cpu, wall)


def _calls(run: _Run, clip: QuietClip) -> tuple[int, int, int, int]:
    """(quiet calls, quiet frames, busy calls, busy frames), by stream time from the start."""
    t0 = run.pipeline.decisions[0][0]
    quiet = [d for ts, d, _ in run.pipeline.decisions if clip.quiet(ts - t0)]
    busy = [d for ts, d, _ in run.pipeline.decisions if not clip.quiet(ts - t0)]
    return sum(quiet), len(quiet), sum(busy), len(busy)


def _splits(events: Sequence[_Event]) -> tuple[int, int]:
    """(places with vehicle events, splits): vehicle events grouped by overlapping best box."""
    places: list[list[_Event]] = []
    for event in events:
        if event.label not in VEHICLES or event.best_box is None:
            continue
        for place in places:
            box = place[0].best_box
            if box is not None and event.best_box.iou(box) > SAME_PLACE_IOU:
                place.append(event)
                break
        else:
            places.append([event])
    return len(places), sum(len(p) - 1 for p in places)


def _quiet_breakdown(clip: QuietClip) -> tuple[float, float, float, int, int]:
    """CPU seconds, over the quiet stretches of ``clip``, of decoding, of the gray conversion
    of the sampled frames and of the motion gate on them (frames decoded, frames sampled)."""
    sampler = FrameSampler(DETECT_FPS)
    gate = MotionGate()
    decode = gray = gating = 0.0
    decoded = sampled = 0
    with VideoSource(str(clip.path), realtime=False) as source:
        frames = iter(source.frames())
        t0: float | None = None
        while True:
            start = time.process_time()
            item = next(frames, None)
            spent = time.process_time() - start
            if item is None:
                break
            t0 = item.ts if t0 is None else t0
            quiet = clip.quiet(item.ts - t0)
            if quiet:
                decode += spent
                decoded += 1
            if not sampler.take(item.ts) or not quiet:
                continue
            sampled += 1
            start = time.process_time()
            small = to_gray_small(item.frame)
            gray += time.process_time() - start
            start = time.process_time()
            gate.check(small, item.ts, tracking=False)
            gating += time.process_time() - start
    return decode, gray, gating, decoded, sampled


def run(model_path: Path) -> None:
    model = YoloOnnx(model_path, threads=2)
    model.detect([np.zeros((576, 768, 3), np.uint8)])  # warm-up
    print(
        "quiet: detector = bare YoloOnnx (2 threads) in a worker thread, batch 1, no Serve; "
        f"{DETECT_FPS:g} fps analysed",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-quiet-") as tmp:
        start = time.perf_counter()
        video = sample_video()
        scene = scene_background(video)
        mixed = write_quiet_clip(
            video, Path(tmp) / "quiet-busy-quiet.mp4", quiet_s=QUIET_S, busy=True, background=scene
        )
        assert mixed.busy is not None
        print(
            f"quiet: clip written in {time.perf_counter() - start:.0f} s: quiet {QUIET_S:g} s, "
            f"busy {mixed.busy[1] - mixed.busy[0]:.1f} s (real frames), quiet {QUIET_S:g} s "
            f"at {mixed.fps:g} fps, 768x576 H.264, noise and lighting drift",
            flush=True,
        )
        off = asyncio.run(_run(model, mixed.path, gate=False, name="quiet-gate-off"))
        on = asyncio.run(_run(model, mixed.path, gate=True, name="quiet-gate-on"))
        breakdown = _quiet_breakdown(mixed)
    _report(mixed, off, on)
    _report_cpu(mixed, on, breakdown)


def _report(clip: QuietClip, off: _Run, on: _Run) -> None:
    q_off, nq_off, b_off, nb_off = _calls(off, clip)
    q_on, nq_on, b_on, nb_on = _calls(on, clip)
    ratio = q_on / q_off if q_off else float("nan")
    print(
        f"quiet: ungated: {q_off}/{nq_off} quiet frames and {b_off}/{nb_off} busy frames to "
        f"the detector ({off.wall_s:.0f} s); gated: {q_on}/{nq_on} quiet, {b_on}/{nb_on} busy "
        f"({on.wall_s:.0f} s)"
    )
    print(
        f"quiet: detector calls over the quiet stretches gated/ungated {ratio:.3f} "
        f"(target <= {TARGET_CALLS}) {verdict(ratio <= TARGET_CALLS)}"
    )
    ungated = [e for e in off.events if e.label == PERSON]
    gated = [e for e in on.events if e.label == PERSON]
    lost = [u for u in ungated if not any(_matches(u, g) for g in gated)]
    print(
        f"quiet: {PERSON} events ungated {len(ungated)}, gated {len(gated)}; ungated ones lost "
        f"by the gate {len(lost)} (target 0) {verdict(not lost)}"
    )
    for u in lost:
        print(f"quiet:   lost ungated {PERSON} event {u.started:.1f}-{u.last_seen:.1f} s")
    places_off, splits_off = _splits(off.events)
    places_on, splits_on = _splits(on.events)
    print(
        f"quiet: parked-vehicle events split: gated {splits_on} over {places_on} places "
        f"(ungated {splits_off} over {places_off}) (target 0) {verdict(splits_on == 0)}"
    )
    for event in on.events:
        if event.label in VEHICLES:
            print(
                f"quiet:   gated {event.label} event {event.started:.1f}-{event.last_seen:.1f} s"
                f" at {event.best_box}"
            )
    reasons = Counter(r for _, _, r in on.pipeline.decisions)
    print(
        "quiet: gated, gate decisions: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
    )


def _cpu_split(run: _Run, clip: QuietClip) -> tuple[tuple[float, int], ...]:
    """(CPU seconds, frames) of the busy stretch, of the quiet stretches once resting, and of
    the quiet frames before that (settling); a frame's CPU runs to the next frame's decision."""
    decisions, cpu = run.pipeline.decisions, run.pipeline.cpu
    t0 = decisions[0][0]
    busy, rest, settle = [0.0, 0], [0.0, 0], [0.0, 0]
    resting = False
    for i in range(len(decisions) - 1):
        ts, _, reason = decisions[i]
        spent = cpu[i + 1] - cpu[i]
        if not clip.quiet(ts - t0):
            bucket, resting = busy, False
        else:
            resting = resting or reason == "stationary"
            bucket = rest if resting else settle
        bucket[0] += spent
        bucket[1] += 1
    return tuple((float(b[0]), int(b[1])) for b in (busy, rest, settle))


def _report_cpu(
    clip: QuietClip, run: _Run, breakdown: tuple[float, float, float, int, int]
) -> None:
    (busy_s, busy_n), (rest_s, rest_n), (settle_s, settle_n) = _cpu_split(run, clip)
    per_busy = busy_s / (busy_n / DETECT_FPS)
    per_rest = rest_s / (rest_n / DETECT_FPS)
    per_settle = settle_s / (settle_n / DETECT_FPS) if settle_n else float("nan")
    ratio = per_rest / per_busy
    print(
        f"quiet: CPU per stream second, gated (this process, all threads): quiet scene, resting "
        f"{per_rest * 1000:.0f} ms ({rest_n / DETECT_FPS:.0f} s), busy "
        f"{per_busy * 1000:.0f} ms ({busy_n / DETECT_FPS:.0f} s); quiet/busy {ratio:.3f} "
        f"(target <= {TARGET_CPU}) {verdict(ratio <= TARGET_CPU)}; the quiet seconds before "
        f"resting (vehicles settling, people leaving) {per_settle * 1000:.0f} ms "
        f"({settle_n / DETECT_FPS:.0f} s); whole run {run.cpu_s:.1f} s CPU"
    )
    decode, gray, gating, decoded, sampled = breakdown
    seconds = decoded / clip.fps
    print(
        "quiet: where a quiet camera's CPU goes, per stream second: decode "
        f"{decode / seconds * 1000:.0f} ms ({decoded} frames), gray conversion "
        f"{gray / seconds * 1000:.1f} ms and motion gate "
        f"{gating / seconds * 1000:.1f} ms ({sampled} frames); the rest of a resting camera "
        f"{per_rest * 1000 - (decode + gray + gating) / seconds * 1000:.0f} ms (re-checks, "
        "threads, event loop)"
    )
