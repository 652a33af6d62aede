"""A camera keeps its next frame's detection in flight while it tracks the current one (no
Ray): the detector always has the camera's next frame queued, results are tracked in frame
order, and every sampled frame is accounted for."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.actors.runner import CameraRunner
from sentinel.config import CameraConfig
from sentinel.domain.stats import CameraState
from sentinel.domain.types import DetectResult, EventChange
from tests.utils.factories import det
from tests.utils.media import h264_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("lookahead-clip"), seconds=6)


class _Sink:
    def __init__(self) -> None:
        self.changes: list[EventChange] = []

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        self.changes.extend(changes)


class _SlowDetector:
    """Answers after ``delay_s``; notes how many of its calls overlapped."""

    def __init__(self, delay_s: float, fail_every: int = 0) -> None:
        self.delay_s = delay_s
        self.fail_every = fail_every
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0

    async def __call__(self, rgb: NDArray[np.uint8]) -> DetectResult:
        self.calls += 1
        call = self.calls
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            if self.fail_every and call % self.fail_every == 0:
                raise ConnectionError("detector replica restarting")
            return DetectResult([det(100, 200, score=0.8)], 1, 1.0)
        finally:
            self.in_flight -= 1


def _runner(clip: Path, detector: _SlowDetector, sink: _Sink) -> CameraRunner:
    cam = CameraConfig(
        id="ahead", source=str(clip), realtime=False, detect_fps=5, motion={"enabled": False}
    )
    return CameraRunner(cam, detect=detector, sink=sink, epoch="e1")


def test_next_frame_is_detected_while_this_one_is_tracked(clip: Path) -> None:
    # Slow enough that the reader keeps the next frame queued on a busy machine too.
    detector, sink = _SlowDetector(0.1), _Sink()
    runner = _runner(clip, detector, sink)
    tracked: list[float] = []
    on_detections = runner.pipeline.on_detections

    ahead: list[int] = []  # detections in flight while each frame is tracked

    def spy(detections, ts, wall, frame=None):  # type: ignore[no-untyped-def]
        tracked.append(ts)
        ahead.append(detector.in_flight)
        return on_detections(detections, ts, wall, frame)

    runner.pipeline.on_detections = spy  # type: ignore[method-assign]
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    counters = runner.stats.counters
    assert detector.most_in_flight == 2 and max(ahead) == 1  # one frame ahead, never more
    # The reader keeps frames queued, so most frames have their successor in flight (a
    # reader starved of CPU by a busy machine can still miss a few).
    assert sum(ahead) >= 0.7 * len(ahead), ahead
    assert tracked == sorted(tracked) and len(set(tracked)) == len(tracked)
    assert counters.frames_sampled == len(tracked) == counters.detector_calls == detector.calls
    assert counters.frames_sampled >= 25  # 6 s at 5 fps
    assert counters.frames_dropped == 0 and counters.detector_errors == 0
    assert any(c.kind.value == "opened" for c in sink.changes)


def test_a_failing_detection_ahead_is_counted_not_fatal(clip: Path) -> None:
    detector, sink = _SlowDetector(0.01, fail_every=4), _Sink()
    runner = _runner(clip, detector, sink)
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    counters = runner.stats.counters
    assert counters.detector_errors == detector.calls // 4 > 0
    assert counters.detector_calls + counters.detector_errors == counters.frames_sampled
    assert "detector replica restarting" in (runner.stats.last_error or "")
