"""The quiet clip (the sample scene without its people, with drift and noise) and a camera
resting on it: parked vehicles keep one event each without a detector call per frame (no Ray;
the detector is a fake that always sees the parked van)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.actors.runner import CameraRunner
from sentinel.config import CameraConfig
from sentinel.domain.stats import CameraState
from sentinel.domain.types import Box, Detection, DetectResult, EventChange, EventChangeKind
from sentinel.video.synth import SensorModel, iter_frames, main, write_quiet_clip
from tests.utils.media import sample_video

WIDTH = 384  # half the sample's width: a fast clip
VAN = Box(326.0, 22.0, 362.0, 50.0)  # the parked van at WIDTH, as YOLO boxes it


def _frames(path: Path) -> list[NDArray[np.uint8]]:
    return list(iter_frames(path))


def test_quiet_busy_quiet_clip(tmp_path: Path) -> None:
    clip = write_quiet_clip(
        sample_video(), tmp_path / "qbq.mp4", quiet_s=10.0, fps=2.0, busy=True, width=WIDTH
    )
    frames = _frames(clip.path)
    # 795 source frames at 10 fps taken every 5th: 159 busy frames between two 20-frame parts.
    assert (clip.frames, len(frames), clip.busy) == (199, 199, (10.0, 89.5))
    assert frames[0].shape == (288, WIDTH, 3)
    with av.open(str(clip.path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    quiet = np.stack(frames[:20]).astype(np.float32)
    busy = np.stack(frames[20:179]).astype(np.float32)
    # Quiet frames differ only by noise and drift, busy ones by people walking through.
    spread_quiet = np.abs(quiet - np.median(quiet, axis=0)).mean()
    spread_busy = np.abs(busy - np.median(busy, axis=0)).mean()
    assert 0.3 < spread_quiet < spread_busy
    # The parked van is there in the quiet part, as in the real frames.
    x1, y1, x2, y2 = (int(v) for v in VAN.as_list())
    source = next(iter_frames(sample_video(), width=WIDTH)).astype(np.float32)
    van = np.abs(np.median(quiet, axis=0) - source)[y1:y2, x1:x2].mean()
    assert van < 8.0, van
    # Drift: the brightness follows the sensor model's gain.
    sensor = SensorModel()
    means = [f.mean() for f in frames[:20]]
    gains = [sensor.gain(i / 2.0) for i in range(20)]
    assert np.corrcoef(means, gains)[0, 1] > 0.9


def test_cli_writes_a_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "quiet.mp4"
    args = [str(sample_video()), str(dest), "--quiet-s", "3", "--fps", "2", "--width", "192"]
    assert main(args) == 0
    assert len(_frames(dest)) == 6
    assert "6 frames at 2 fps, 3.0 s" in capsys.readouterr().out


class _Sink:
    def __init__(self) -> None:
        self.changes: list[EventChange] = []

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        self.changes.extend(changes)


class _VanDetector:
    """Sees the parked van in every frame (with a pixel of jitter), and nothing else."""

    def __init__(self) -> None:
        self.calls = 0
        self.rng = np.random.default_rng(0)

    async def __call__(self, rgb: NDArray[np.uint8]) -> DetectResult:
        self.calls += 1
        dx, dy = self.rng.normal(0.0, 0.5, 2)
        return DetectResult([Detection(VAN.shifted(dx, dy), "truck", 0.8)], 1, 1.0)


def test_a_camera_rests_on_a_parked_van(tmp_path: Path) -> None:
    clip = write_quiet_clip(
        sample_video(), tmp_path / "quiet.mp4", quiet_s=90.0, fps=5.0, width=WIDTH
    )
    detector, sink = _VanDetector(), _Sink()
    camera = CameraConfig(
        id="quiet",
        source=str(clip.path),
        realtime=False,
        detect_fps=5,
        stationary={"after_s": 5.0, "recheck_s": 15.0},
    )
    runner = CameraRunner(camera, detect=detector, sink=sink, epoch="e1")
    reasons: list[str] = []
    wants = runner.pipeline.wants_detection

    def spy(gray, ts, size=None):  # type: ignore[no-untyped-def]
        decision = wants(gray, ts, size)
        reasons.append(decision.reason)
        return decision

    runner.pipeline.wants_detection = spy  # type: ignore[method-assign]
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    assert len(reasons) == 450
    # ~6 s to confirm and settle (30 frames), then a re-check every 15 s: ~36 calls.
    assert detector.calls == runner.stats.counters.detector_calls
    assert detector.calls <= 45, reasons
    assert "touched" not in reasons  # sensor noise and drift never touch the van
    kinds = [c.kind for c in sink.changes if c.kind is not EventChangeKind.UPDATED]
    assert kinds == [EventChangeKind.OPENED, EventChangeKind.CLOSED]  # closed by the stop
    assert len({c.event.id for c in sink.changes}) == 1


def test_finished_is_published_after_the_events_close(tmp_path: Path) -> None:
    """Whoever reads "finished" finds every event of the clip ended: the state flips only once
    the closing changes are stored (the state read while they are stored is not final)."""
    clip = write_quiet_clip(
        sample_video(), tmp_path / "short.mp4", quiet_s=4.0, fps=5.0, width=WIDTH
    )
    camera = CameraConfig(id="short", source=str(clip.path), realtime=False, detect_fps=5)
    seen: list[CameraState] = []

    class _StateSink(_Sink):
        def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
            if any(c.kind is EventChangeKind.CLOSED for c in changes):
                seen.append(runner.stats.state)
            super().apply(changes, rgb)

    sink = _StateSink()
    runner = CameraRunner(camera, detect=_VanDetector(), sink=sink, epoch="e1")
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    assert seen and CameraState.FINISHED not in seen
    assert runner.stats.state is CameraState.FINISHED
    closed = {c.event.id for c in sink.changes if c.kind is EventChangeKind.CLOSED}
    assert closed == {c.event.id for c in sink.changes}
