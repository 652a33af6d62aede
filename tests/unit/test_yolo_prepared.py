"""The runner on inputs prepared by the caller: what cameras send the detector deployment."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from sentinel.domain.boxes import letterbox_u8
from sentinel.models.yolo import YoloOnnx
from tests.utils.media import sample_video


@pytest.fixture(scope="module")
def model(onnx_model: Path) -> YoloOnnx:
    return YoloOnnx(onnx_model, threads=1)


@pytest.fixture(scope="module")
def frame() -> NDArray[np.uint8]:
    with av.open(str(sample_video())) as container:
        first = next(container.decode(video=0))
        return np.asarray(first.to_ndarray(format="rgb24"), dtype=np.uint8)


def test_prepared_full_frame_matches_detect(model: YoloOnnx, frame: NDArray[np.uint8]) -> None:
    direct = model.detect([frame])[0]
    prepared = model.detect_prepared([model.prepare(frame)])[0]
    assert sum(d.label == "person" for d in direct) >= 3  # PETS09: people in view from frame 1
    assert prepared == direct


def test_mixed_sizes_run_per_size_and_keep_order(model: YoloOnnx, frame: NDArray[np.uint8]) -> None:
    """A native 320 crop beside full frames: each result is in its own source's pixels."""
    people = [d for d in model.detect([frame])[0] if d.label == "person"]
    target = max(people, key=lambda d: d.score)
    cx, cy = (target.box.x1 + target.box.x2) / 2, (target.box.y1 + target.box.y2) / 2
    x0 = int(np.clip(cx - 160, 0, frame.shape[1] - 320))
    y0 = int(np.clip(cy - 160, 0, frame.shape[0] - 320))
    crop = np.ascontiguousarray(frame[y0 : y0 + 320, x0 : x0 + 320])
    full = model.prepare(frame)
    native = letterbox_u8(crop, 320)
    assert native.letterbox.scale == 1.0  # native resolution: no resize, no padding

    results = model.detect_prepared([full, native, full])
    assert results[0] == results[2] == model.detect([frame])[0]
    # The person found in the crop is the same one, in crop pixels (within a few pixels).
    in_crop = [d for d in results[1] if d.label == "person"]
    best = max(
        in_crop,
        key=lambda d: (
            -abs((d.box.x1 + d.box.x2) / 2 + x0 - cx) - abs((d.box.y1 + d.box.y2) / 2 + y0 - cy)
        ),
    )
    assert abs(best.box.x1 + x0 - target.box.x1) < 8
    assert abs(best.box.y2 + y0 - target.box.y2) < 8


@pytest.mark.parametrize(("spin", "entry"), [(False, "0"), (True, "1")])
def test_threads_sleep_between_sections_unless_told_to_spin(
    onnx_model: Path, spin: bool, entry: str
) -> None:
    """Spinning threads would take the cores the cameras share with the replica."""
    runner = YoloOnnx(onnx_model, threads=2, spin=spin, verify=False)
    options = runner.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
