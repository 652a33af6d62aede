"""Camera pipeline: what the motion gate saves and costs, and frame-to-event latency.

Part 1 runs :class:`CameraRunner` over the sample clip (``realtime=False``, 5 fps analysed)
twice, motion gate on and off, and compares detector calls and person events. The detector is
the bare :class:`YoloOnnx` runner (2 threads) called in a worker thread, one frame per call: the
same code the Serve deployment runs, without Ray, so both runs are deterministic and cheap.

Recall of gated vs. ungated is the fraction of ungated person events matched by a gated person
event. Rule (the store keeps one box per event, so boxes are compared where both runs saw them):
  * the events' intervals ``[started_at, last_seen_at]`` overlap (``last_seen_at``, not
    ``ended_at``: ``ended_at`` only adds the constant ``close_after_s`` and is the run's end
    time for events still open when the clip ends), and
  * their best boxes (the ``box`` of each ``new_best`` change) have centres < 100 px apart, or
    two boxes the sink received for them (OPENED / UPDATED / CLOSED changes, each at its
    ``last_seen_at``) at most 1 s apart in stream time overlap with IoU > 0.3.
Several ungated events may match the same gated one (a gate that merges two visits of one
person into one event keeps its recall). Times are converted to stream seconds in both runs.

Part 2 runs the camera at ``realtime=True`` for ``LATENCY_S`` seconds (gate on, real
:class:`StoreSink` on a temporary SQLite database and object folder) and records every sample
the runner puts in ``stats.frame_to_event_ms``: from the end of decoding (and RGB conversion) of
the frame that opened an event to the return of the sink's write. The frame that opens an event
is the one that confirms its track (``min_hits`` detections), so this is the system's delay
after confirmation, not the time since the object first appeared.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import percentile, sample_video, verdict
from sentinel.actors.runner import CameraRunner, DetectFn, EventSink
from sentinel.actors.sink import StoreSink
from sentinel.config import CameraConfig, MotionSettings
from sentinel.domain.motion import MotionDecision
from sentinel.domain.pipeline import FramePipeline, PipelineConfig
from sentinel.domain.stats import Histogram
from sentinel.domain.types import Box, Detection, DetectResult, EventChange, EventChangeKind
from sentinel.models.yolo import YoloOnnx
from sentinel.store.db import make_engine, migrate
from sentinel.store.objects import LocalObjectStore
from sentinel.store.repo import EventRepository

TARGET_RECALL = 0.95
LABEL = "person"
CENTRE_PX = 100.0
SAMPLE_IOU = 0.3
SAMPLE_DT_S = 1.0
LATENCY_S = 40.0
DETECT_FPS = 5.0


@dataclass
class _Event:
    id: str
    label: str
    started: float  # stream seconds
    last_seen: float
    best_box: Box | None = None
    samples: list[tuple[float, Box]] = field(default_factory=list)


class _ClockPipeline(FramePipeline):
    """Records the (stream ts, wall) of the first frame, to put event times on stream time,
    and why the motion gate let each frame through (or not)."""

    origin: tuple[float, datetime] | None = None

    def __init__(self, camera_id: str, epoch: str, config: PipelineConfig) -> None:
        super().__init__(camera_id, epoch, config)
        self.reasons: Counter[str] = Counter()
        self.forced_by_static_only = 0  # "tracking" with only non-person tracks live

    def wants_detection(
        self, gray_small: NDArray[np.uint8], ts: float, size: tuple[int, int] | None = None
    ) -> MotionDecision:
        decision = super().wants_detection(gray_small, ts, size)
        self.reasons[decision.reason] += 1
        if decision.reason == "tracking" and all(t.label != LABEL for t in self.active_tracks()):
            self.forced_by_static_only += 1
        return decision

    def _note(self, ts: float, wall: datetime) -> None:
        if self.origin is None:
            self.origin = (ts, wall)

    def on_detections(
        self,
        detections: Sequence[Detection],
        ts: float,
        wall: datetime,
        frame: NDArray[np.uint8] | None = None,
    ) -> list[EventChange]:
        self._note(ts, wall)
        return super().on_detections(detections, ts, wall, frame)

    def on_skipped(self, ts: float, wall: datetime) -> list[EventChange]:
        self._note(ts, wall)
        return super().on_skipped(ts, wall)


class _RecordingSink:
    """Keeps what the store would get: per event, its times, best box and every box seen."""

    def __init__(self) -> None:
        self.raw: dict[str, list[tuple[bool, str, datetime, datetime, Box]]] = {}

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        del rgb
        for change in changes:
            ev = change.event  # copy the fields now: the pipeline may mutate the state later
            self.raw.setdefault(ev.id, []).append(
                (change.new_best, ev.label, ev.started_at, ev.last_seen_at, ev.box)
            )

    def events(self, origin: tuple[float, datetime]) -> list[_Event]:
        ts0, wall0 = origin

        def stream_s(wall: datetime) -> float:
            return ts0 + (wall - wall0).total_seconds()

        out: list[_Event] = []
        for event_id, rows in self.raw.items():
            last = rows[-1]
            event = _Event(event_id, last[1], stream_s(last[2]), stream_s(last[3]))
            for new_best, _, _, seen, box in rows:
                if new_best:
                    event.best_box = box
                event.samples.append((stream_s(seen), box))
            out.append(event)
        return out


class _RecordingHistogram(Histogram):
    """A histogram that also keeps the exact values observed."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        super().__init__(bounds)
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        super().observe(value)
        self.values.append(value)


class _TimedSink:
    """Times each write of the wrapped sink (the last leg of frame-to-event latency)."""

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.opened_ms: list[float] = []

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        start = time.perf_counter()
        self.inner.apply(changes, rgb)
        if any(c.kind is EventChangeKind.OPENED for c in changes):
            self.opened_ms.append((time.perf_counter() - start) * 1000.0)


def _distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = a.center, b.center
    return float(np.hypot(ax - bx, ay - by))


def _matches(u: _Event, g: _Event) -> bool:
    if u.label != g.label or u.started > g.last_seen or g.started > u.last_seen:
        return False
    ub, gb = u.best_box, g.best_box
    if ub is not None and gb is not None and _distance(ub, gb) < CENTRE_PX:
        return True
    return any(
        abs(tu - tg) <= SAMPLE_DT_S and bu.iou(bg) > SAMPLE_IOU
        for tu, bu in u.samples
        for tg, bg in g.samples
    )


def _detector(model: YoloOnnx) -> DetectFn:
    async def detect(rgb: NDArray[np.uint8]) -> DetectResult:
        start = time.perf_counter()
        dets = (await asyncio.to_thread(model.detect, [rgb]))[0]
        return DetectResult(dets, 1, (time.perf_counter() - start) * 1000.0)

    return detect


@dataclass
class _RunResult:
    runner: CameraRunner
    pipeline: _ClockPipeline
    events: list[_Event]
    seconds: float


async def _run_file(model: YoloOnnx, video: Path, *, gate: bool) -> _RunResult:
    camera = CameraConfig(
        id="bench-gate-on" if gate else "bench-gate-off",
        source=str(video),
        realtime=False,
        detect_fps=DETECT_FPS,
        motion=MotionSettings(enabled=gate),
    )
    sink = _RecordingSink()
    runner = CameraRunner(camera, detect=_detector(model), sink=sink, epoch="bench")
    pipeline = _ClockPipeline(camera.id, "bench", camera.pipeline_config())
    runner.pipeline = pipeline
    start = time.perf_counter()
    state = await runner.run()
    seconds = time.perf_counter() - start
    if str(state) != "finished" or pipeline.origin is None:
        raise RuntimeError(f"camera run ended {state}: {runner.stats.last_error}")
    return _RunResult(runner, pipeline, sink.events(pipeline.origin), seconds)


async def _latency(
    model: YoloOnnx, video: Path, tmp: Path
) -> tuple[list[float], list[float], CameraRunner]:
    camera = CameraConfig(
        id="bench-latency", source=str(video), realtime=True, detect_fps=DETECT_FPS
    )
    url = f"sqlite:///{tmp / 'events.db'}"
    migrate(url)
    sink = _TimedSink(
        StoreSink(camera.id, EventRepository(make_engine(url)), LocalObjectStore(tmp / "objects"))
    )
    runner = CameraRunner(camera, detect=_detector(model), sink=sink, epoch="bench")
    recorder = _RecordingHistogram(runner.stats.frame_to_event_ms.bounds)
    runner.stats.frame_to_event_ms = recorder
    asyncio.get_running_loop().call_later(LATENCY_S, runner.stop)
    await runner.run()
    return recorder.values, sink.opened_ms, runner


def _report_gate(on: _RunResult, off: _RunResult) -> None:
    for name, res in (("on", on), ("off", off)):
        c = res.runner.stats.counters
        people = sum(1 for e in res.events if e.label == LABEL)
        print(
            f"pipeline: gate {name}: {c.frames_sampled} frames analysed, {c.detector_calls} "
            f"detector calls, {c.frames_skipped_motion} skipped by motion, {people} {LABEL} "
            f"events ({len(res.events)} events of all labels), {res.seconds:.1f} s"
        )
    ungated = [e for e in off.events if e.label == LABEL]
    gated = [e for e in on.events if e.label == LABEL]
    missed = [u for u in ungated if not any(_matches(u, g) for g in gated)]
    recall = (len(ungated) - len(missed)) / len(ungated) if ungated else 1.0
    calls_on = on.runner.stats.counters.detector_calls
    calls_off = off.runner.stats.counters.detector_calls
    print(
        f"pipeline: gate saves {1 - calls_on / calls_off:.0%} of detector calls "
        f"({calls_on} vs {calls_off}); {LABEL} recall gated vs ungated {recall:.2f} "
        f"({len(ungated) - len(missed)}/{len(ungated)}) (target >= {TARGET_RECALL}) "
        f"{verdict(recall >= TARGET_RECALL)}"
    )
    for u in missed:
        print(f"pipeline:   unmatched ungated {LABEL} event {u.started:.1f}-{u.last_seen:.1f} s")
    reasons = ", ".join(f"{k} {v}" for k, v in on.pipeline.reasons.most_common())
    print(
        f"pipeline: gate on, why frames went to the detector: {reasons}; of the 'tracking' "
        f"ones, {on.pipeline.forced_by_static_only} had only non-{LABEL} tracks live"
    )


def run(model_path: Path) -> None:
    video = sample_video()
    model = YoloOnnx(model_path, threads=2)
    model.detect([np.zeros((576, 768, 3), np.uint8)])  # warm-up
    print(
        "pipeline: detector = bare YoloOnnx (2 threads) in a worker thread, batch 1, no Serve",
        flush=True,
    )
    # Gate off first, then on: both are deterministic (no realtime pacing), so order only
    # affects the wall time printed, not the counts.
    off = asyncio.run(_run_file(model, video, gate=False))
    on = asyncio.run(_run_file(model, video, gate=True))
    _report_gate(on, off)

    with tempfile.TemporaryDirectory(prefix="sentinel-bench-latency-") as tmp:
        values, sink_ms, runner = asyncio.run(_latency(model, video, Path(tmp)))
    c = runner.stats.counters
    lat = runner.stats.detector_latency_ms
    mean_detect = lat.total / lat.count if lat.count else float("nan")
    if values:
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(
            f"pipeline: frame-to-event latency (realtime, {LATENCY_S:.0f} s, gate on, SQLite "
            f"sink) p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(values):.0f} ms over "
            f"{len(values)} opened events (exact samples)"
        )
    else:
        print(f"pipeline: frame-to-event latency: no event opened in {LATENCY_S:.0f} s")
    print(
        f"pipeline: realtime run: {c.frames_decoded} decoded, {c.frames_sampled} analysed, "
        f"{c.frames_dropped} dropped, {c.detector_calls} detector calls "
        f"(mean {mean_detect:.0f} ms each); store writes with an OPENED change: p50 "
        f"{percentile(sink_ms, 50) if sink_ms else float('nan'):.0f} ms"
    )
