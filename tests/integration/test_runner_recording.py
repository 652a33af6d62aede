"""A camera records while it detects (no Ray): continuous and event recording, real video."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy.engine import Engine

from sentinel.actors.recording import CameraRecording
from sentinel.actors.runner import CameraRunner
from sentinel.actors.sink import StoreSink
from sentinel.config import CameraConfig
from sentinel.domain.stats import CameraState
from sentinel.domain.types import DetectResult
from sentinel.models.yolo import YoloOnnx
from sentinel.store.objects import LocalObjectStore
from sentinel.store.repo import EventRepository
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.video.segments import finalize_segment
from tests.utils.media import h264_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("rec-clip"), seconds=20)


@pytest.fixture(scope="module")
def model(onnx_model: Path) -> Iterator[YoloOnnx]:
    yield YoloOnnx(onnx_model, threads=2)


def _run(
    mode: str, clip: Path, model: YoloOnnx, engine: Engine, tmp: Path
) -> tuple[CameraRunner, SegmentRepository, LocalObjectStore]:
    camera = CameraConfig(
        id="rec",
        source=str(clip),
        realtime=False,
        detect_fps=5,
        record={"mode": mode, "pre_roll_s": 2, "post_roll_s": 2, "segment_s": 4},
    )
    store = LocalObjectStore(tmp / "objects")
    segments = SegmentRepository(engine)
    events = EventRepository(engine)

    async def detect(rgb: NDArray[np.uint8]) -> DetectResult:
        t0 = time.perf_counter()
        found = await asyncio.to_thread(model.detect, [rgb])
        return DetectResult(found[0], 1, (time.perf_counter() - t0) * 1000)

    def on_segment(info: SegmentInfo, kind: str) -> None:
        finalize_segment(info, camera_id="rec", kind=kind, store=store, repo=segments)

    runner: CameraRunner

    recording = CameraRecording(
        camera.record,
        directory=tmp / "tmp",
        on_segment=on_segment,
        clock=lambda: runner.wall_now or datetime.now(UTC),
    )
    runner = CameraRunner(
        camera,
        detect=detect,
        sink=StoreSink("rec", events, store),
        epoch="e",
        recording=recording,
    )
    assert asyncio.run(runner.run()) is CameraState.FINISHED
    return runner, segments, store


def _decodes(data: bytes, path: Path) -> tuple[int, bool]:
    path.write_bytes(data)
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return len(frames), bool(frames and frames[0].key_frame)


def test_continuous_recording_covers_the_clip(
    clip: Path, model: YoloOnnx, store_engine: Engine, tmp_path: Path
) -> None:
    runner, segments, store = _run("continuous", clip, model, store_engine, tmp_path)
    assert runner.wall_now is not None
    rows = segments.range(
        "rec", runner.wall_now - timedelta(hours=1), runner.wall_now + timedelta(hours=1)
    )
    assert len(rows) >= 4
    total = sum(r.duration_s for r in rows)
    assert 16 <= total <= 24  # the 20 s clip, within one segment
    for r in rows:
        frames, key_first = _decodes(store.get(r.object_key), tmp_path / "s.mp4")
        assert frames > 0 and key_first and not r.transcoded and r.codec == "h264"
    assert runner.recording is not None
    status = runner.recording.status()
    assert status["segments"] == len(rows) and status["state"] == "idle"
    assert not list((tmp_path / "tmp").glob(".tmp-*"))  # every temp file moved or removed


def test_event_recording_has_pre_roll(
    clip: Path, model: YoloOnnx, store_engine: Engine, tmp_path: Path
) -> None:
    _, segments, store = _run("events", clip, model, store_engine, tmp_path)
    events = EventRepository(store_engine).list(camera_id="rec", limit=500).items
    assert events, "the clip shows people"
    first_event = min(e.started_at for e in events)
    rows = segments.range(
        "rec", first_event - timedelta(minutes=5), first_event + timedelta(minutes=5)
    )
    assert rows and all(r.kind == "event" for r in rows)
    # An event opens only after a few detections confirm its track; the recording still
    # starts at (or before) the event's first frame: that is the pre-roll buffer at work.
    assert rows[0].start_at <= first_event + timedelta(seconds=0.05)
    for r in rows:
        frames, key_first = _decodes(store.get(r.object_key), tmp_path / "e.mp4")
        assert frames > 0 and key_first
