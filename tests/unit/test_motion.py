from __future__ import annotations

import numpy as np
import pytest

from sentinel.domain.motion import MotionConfig, MotionGate, box_blur3
from tests.utils.factories import gray, gray_with_square


def test_first_frame_detects_then_static_frames_do_not() -> None:
    gate = MotionGate(MotionConfig())
    first = gate.check(gray(), 0.0, tracking=False)
    assert (first.detect, first.reason) == (True, "first frame")
    for i in range(1, 20):
        decision = gate.check(gray(), i * 0.2, tracking=False)
        assert (decision.detect, decision.reason, decision.motion) == (False, "idle", 0.0)


def test_pixel_noise_below_delta_is_not_motion() -> None:
    rng = np.random.default_rng(0)
    gate = MotionGate(MotionConfig())
    gate.check(gray(), 0.0, tracking=False)
    for i in range(1, 10):
        noisy = (gray().astype(np.int16) + rng.integers(-10, 11, size=(72, 96))).astype(np.uint8)
        assert not gate.check(noisy, i * 0.2, tracking=False).detect


def test_moving_square_detects() -> None:
    gate = MotionGate(MotionConfig())
    gate.check(gray_with_square(5, 30), 0.0, tracking=False)
    gate.check(gray_with_square(5, 30), 0.2, tracking=False)
    decisions = [gate.check(gray_with_square(5 + 6 * i, 30), 0.2 + 0.2 * i, False) for i in (1, 2)]
    assert all(d.detect and d.reason == "motion" for d in decisions)
    assert all(d.motion >= 0.003 for d in decisions)


def test_max_idle_refresh() -> None:
    gate = MotionGate(MotionConfig(max_idle_s=10.0))
    gate.check(gray(), 0.0, tracking=False)
    assert not gate.check(gray(), 9.9, tracking=False).detect
    refresh = gate.check(gray(), 10.0, tracking=False)
    assert (refresh.detect, refresh.reason) == (True, "refresh")
    # The refresh counts as a detection: the next one is due 10 s later.
    assert not gate.check(gray(), 15.0, tracking=False).detect
    assert gate.check(gray(), 20.0, tracking=False).detect


def test_idle_interval_override_and_forced_detection() -> None:
    gate = MotionGate(MotionConfig(max_idle_s=10.0))
    gate.check(gray(), 0.0, tracking=False)
    # A longer interval for this frame (stationary objects held): no refresh at 10 s.
    held = gate.check(gray(), 10.0, tracking=False, idle_s=30.0, idle_reason="recheck")
    assert (held.detect, held.reason) == (False, "idle")
    due = gate.check(gray(), 30.0, tracking=False, idle_s=30.0, idle_reason="recheck")
    assert (due.detect, due.reason) == (True, "recheck")
    # A decision the caller forces restarts the interval, and keeps the frame's mask.
    idle = gate.check(gray(), 35.0, tracking=False)
    forced = gate.force(idle, 35.0, "touched")
    assert (forced.detect, forced.reason, forced.motion) == (True, "touched", idle.motion)
    assert forced.mask is idle.mask
    assert not gate.check(gray(), 44.9, tracking=False).detect
    assert gate.check(gray(), 45.0, tracking=False).reason == "refresh"


def test_tracking_forces_detection() -> None:
    gate = MotionGate(MotionConfig())
    gate.check(gray(), 0.0, tracking=False)
    decision = gate.check(gray(), 1.0, tracking=True)
    assert (decision.detect, decision.reason) == (True, "tracking")


def test_gate_off_always_detects() -> None:
    gate = MotionGate(MotionConfig(enabled=False))
    reasons = [gate.check(gray(), t, tracking=False).reason for t in (0.0, 1.0, 2.0)]
    assert reasons == ["first frame", "gate off", "gate off"]


def test_size_change_resets_background() -> None:
    gate = MotionGate(MotionConfig())
    gate.check(gray(), 0.0, tracking=False)
    decision = gate.check(gray(shape=(48, 64)), 1.0, tracking=False)
    assert (decision.detect, decision.reason) == (True, "reset")
    assert not gate.check(gray(shape=(48, 64)), 2.0, tracking=False).detect


def test_background_absorbs_a_parked_object() -> None:
    gate = MotionGate(MotionConfig(alpha=0.5, max_idle_s=1000.0))
    gate.check(gray(), 0.0, tracking=False)
    assert gate.check(gray_with_square(40, 30), 1.0, tracking=False).detect
    decisions = [
        gate.check(gray_with_square(40, 30), 1.0 + i, tracking=False) for i in range(1, 12)
    ]
    assert not decisions[-1].detect


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            np.zeros((72, 96, 3), dtype=np.uint8),
            r"\(H, W\) uint8 array, but got shape \(72, 96, 3\)",
        ),
        (np.zeros((72, 96), dtype=np.float32), "but got dtype float32"),
        (np.zeros((0, 96), dtype=np.uint8), r"but got shape \(0, 96\)"),
    ],
)
def test_rejects_bad_frames(frame: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MotionGate().check(frame, 0.0, tracking=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold must be in"),
        ({"pixel_delta": 300}, "pixel_delta must be in"),
        ({"alpha": 0.0}, "alpha must be in"),
        ({"max_idle_s": -1.0}, "max_idle_s must be"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MotionConfig(**kwargs)  # type: ignore[arg-type]


def test_box_blur_smooths_a_single_pixel() -> None:
    frame = np.zeros((5, 5), dtype=np.uint8)
    frame[2, 2] = 90
    blurred = box_blur3(frame)
    assert blurred.dtype == np.float32
    assert blurred[1:4, 1:4] == pytest.approx(np.full((3, 3), 10.0))
    assert float(blurred.sum()) == pytest.approx(90.0)
