"""The quiet benchmark's accounting: calls per stretch, vehicle event splits, and CPU split into
busy, resting and settling frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import quiet as bench
from benchmarks.pipeline import _Event
from sentinel.video.synth import QuietClip
from tests.utils.factories import box_at

CLIP = QuietClip(path=Path("/unused.mp4"), fps=10.0, frames=300, busy=(10.0, 20.0))


class _FakeRun:
    """Only what the accounting reads: the pipeline's decisions and CPU readings."""

    def __init__(self, decisions: list[tuple[float, bool, str]], cpu: list[float]) -> None:
        self.pipeline: Any = type("P", (), {"decisions": decisions, "cpu": cpu})()


def _decisions() -> list[tuple[float, bool, str]]:
    out = []
    for i in range(150):  # 30 s at 5 fps, starting at stream time 100 s
        t = i / 5
        if 10.0 <= t < 20.0:
            reason = "tracking"
        elif t < 5.0 or 20.0 <= t < 22.0:
            reason = "tracking"  # settling, then people leaving
        else:
            reason = "recheck" if i % 50 == 35 else "stationary"  # at 7 s and 27 s
        out.append((100.0 + t, reason != "stationary", reason))
    return out


def test_calls_are_counted_per_stretch() -> None:
    run = _FakeRun(_decisions(), [0.0] * 150)
    quiet_calls, quiet_frames, busy_calls, busy_frames = bench._calls(run, CLIP)  # type: ignore[arg-type]
    assert (busy_calls, busy_frames) == (50, 50)
    assert quiet_frames == 100
    assert quiet_calls == 25 + 10 + 2  # settling, people leaving, two re-checks


def test_cpu_is_split_into_busy_resting_and_settling() -> None:
    decisions = _decisions()
    # Each frame costs 1 CPU second while detecting, 0.1 while resting.
    cpu = [0.0]
    for _, detect, _ in decisions[:-1]:
        cpu.append(cpu[-1] + (1.0 if detect else 0.1))
    run = _FakeRun(decisions, cpu)
    busy, rest, settle = bench._cpu_split(run, CLIP)  # type: ignore[arg-type]
    assert busy == (50.0, 50)
    assert settle == (35.0, 35)  # the first 5 s and the 2 s after the busy part
    # The rest but the last frame (no reading after it): two re-checks, 62 skipped frames.
    assert rest[1] == 64
    assert rest[0] == pytest.approx(2 * 1.0 + 62 * 0.1)


def test_vehicle_events_at_one_place_count_as_splits() -> None:
    van, car = box_at(680, 70, 70, 55), box_at(750, 70, 34, 44)
    events = [
        _Event("a", "truck", 0.0, 50.0, best_box=van),
        _Event("b", "truck", 60.0, 90.0, best_box=van.shifted(3, 1)),  # the van again: split
        _Event("c", "car", 0.0, 90.0, best_box=car),
        _Event("d", "person", 0.0, 90.0, best_box=van),  # not a vehicle
    ]
    assert bench._splits(events) == (2, 1)
    assert bench._splits(events[2:]) == (1, 0)
