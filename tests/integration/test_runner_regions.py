"""Motion regions in the camera loop (no Ray): the real model on crops around motion and tracks
finds the same people as on whole frames for a fraction of the pixels; a planner failure sends
that frame whole and is counted; a camera whose resolution changes goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import sentinel.domain.regions as regions_module
from sentinel.actors.runner import CameraRunner
from sentinel.config import CameraConfig
from sentinel.domain.boxes import ModelInput
from sentinel.domain.stats import CameraState
from sentinel.domain.types import DetectResult, EventChange, EventChangeKind
from sentinel.models.yolo import YoloOnnx
from sentinel.video.source import DecodedFrame, VideoSource
from tests.utils.media import h264_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("regions-clip"), seconds=20)


@pytest.fixture(scope="module")
def model(onnx_model: Path) -> YoloOnnx:
    return YoloOnnx(onnx_model, threads=2)


class _Sink:
    def __init__(self) -> None:
        self.changes: list[EventChange] = []

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        self.changes.extend(changes)

    def people(self) -> int:
        return sum(
            1
            for c in self.changes
            if c.kind is EventChangeKind.OPENED and c.event.label == "person"
        )


class _Model:
    """The real model behind both detector entry points; counts the pixels it is given."""

    def __init__(self, model: YoloOnnx) -> None:
        self.model = model
        self.pixels = 0
        self.frames = 0
        self.inputs = 0

    async def detect(self, rgb: NDArray[np.uint8]) -> DetectResult:
        self.frames += 1
        prepared = self.model.prepare(rgb)
        self.pixels += prepared.letterbox.size**2
        found = await asyncio.to_thread(self.model.detect_prepared, [prepared])
        return DetectResult(found[0], 1, 1.0)

    async def detect_inputs(self, inputs: Sequence[ModelInput]) -> list[DetectResult]:
        self.inputs += len(inputs)
        self.pixels += sum(p.letterbox.size**2 for p in inputs)
        found = await asyncio.to_thread(self.model.detect_prepared, inputs)
        return [DetectResult(d, len(inputs), 1.0) for d in found]


def _run(
    source: str, model: YoloOnnx, *, regions: bool, **runner: Any
) -> tuple[CameraRunner, _Sink, _Model]:
    cam = CameraConfig(
        id="regions",
        source=source,
        realtime=False,
        detect_fps=5,
        regions={"enabled": regions},
    )
    sink, detector = _Sink(), _Model(model)
    run = CameraRunner(
        cam,
        detect=detector.detect,
        detect_inputs=detector.detect_inputs,
        sink=sink,
        epoch="e1",
        **runner,
    )
    assert asyncio.run(run.run()) is CameraState.FINISHED
    return run, sink, detector


def test_regions_find_the_people_for_fewer_pixels(clip: Path, model: YoloOnnx) -> None:
    whole_run, whole, whole_model = _run(str(clip), model, regions=False)
    crops_run, crops, crops_model = _run(str(clip), model, regions=True)
    counters = crops_run.stats.counters
    assert whole_run.stats.counters.region_frames == 0 and whole_model.inputs == 0
    assert counters.region_frames > 0.5 * counters.detector_calls, counters
    assert counters.regions >= counters.region_frames
    assert counters.region_fallbacks == 0
    # PETS09: people are in view all along; regions find them as whole frames do.
    assert whole.people() >= 4
    assert 0.75 * whole.people() <= crops.people() <= 1.5 * whole.people()
    assert crops_model.pixels < 0.6 * whole_model.pixels, (crops_model.pixels, whole_model.pixels)


def test_a_failing_planner_sends_whole_frames_and_counts(
    clip: Path, model: YoloOnnx, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("planner bug")

    monkeypatch.setattr(regions_module, "plan_regions", broken)
    run, sink, detector = _run(str(clip), model, regions=True)
    counters = run.stats.counters
    assert counters.region_fallbacks > 0 and counters.region_frames == 0
    assert detector.inputs == 0 and detector.frames == counters.detector_calls > 0
    assert sink.people() >= 4


class _Resized(VideoSource):
    """The clip, with every frame after the first 5 s scaled to half size (a camera whose
    resolution changes mid-stream)."""

    def frames(self) -> Iterator[DecodedFrame]:
        for decoded in super().frames():
            if decoded.ts >= 5.0:
                frame = decoded.frame.reformat(
                    width=decoded.frame.width // 2, height=decoded.frame.height // 2
                )
                decoded = DecodedFrame(decoded.index, decoded.ts, frame)
            yield decoded


def test_a_resolution_change_replans(clip: Path, model: YoloOnnx) -> None:
    run, sink, detector = _run(str(clip), model, regions=True, source_factory=_Resized)
    counters = run.stats.counters
    assert counters.region_fallbacks == 0
    assert counters.region_frames > 0 and detector.frames > 0
    assert sink.people() >= 2
