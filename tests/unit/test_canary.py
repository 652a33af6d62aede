"""The canary's pure parts: frame routing, tallies, figures, the guard."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sentinel.config import CanaryGuardSettings
from sentinel.train.canary import (
    ModelFigures,
    ModelTally,
    collect_figures,
    frame_share,
    guard_reasons,
    serves_challenger,
)
from sentinel.train.serving import ModelService, gate_passed


def _route(**canary: Any) -> dict[str, Any]:
    return {"revision": 1, "champion": 1, "canary": {"version": 2, **canary}}


def test_frame_share_is_stable_and_spread() -> None:
    assert frame_share("cam", 7) == frame_share("cam", 7)
    shares = [frame_share("cam", n) for n in range(4000)]
    assert all(0.0 <= s < 1.0 for s in shares)
    assert 0.45 < sum(s < 0.5 for s in shares) / len(shares) < 0.55


@pytest.mark.parametrize(
    ("route", "camera", "expected"),
    [
        (None, "a", False),
        ({"revision": 3, "champion": 1, "canary": None}, "a", False),
        (_route(cameras=["a"], share=0.0), "a", True),
        (_route(cameras=["a"], share=0.0), "b", False),
        (_route(cameras=[], share=1.0), "b", True),
        (_route(cameras=[], share=0.0, all=True), "b", True),
    ],
)
def test_serves_challenger(route: dict[str, Any] | None, camera: str, expected: bool) -> None:
    assert all(serves_challenger(route, camera, n) is expected for n in range(20))


def test_a_share_routes_that_share_of_frames_and_always_the_same_ones() -> None:
    route = _route(cameras=[], share=0.25)
    chosen = [n for n in range(2000) if serves_challenger(route, "cam", n)]
    assert 0.2 < len(chosen) / 2000 < 0.3
    assert chosen == [n for n in range(2000) if serves_challenger(route, "cam", n)]


def test_tally_counts_per_version_and_resets() -> None:
    tally = ModelTally()
    tally.observe(1, 3, 10.0)
    tally.observe(1, 1, 30.0)
    tally.observe(2, 0, 5.0)
    tally.observe(None, 9, 1.0)  # an unversioned model is not counted
    assert tally.to_dict() == {
        "1": {"frames": 2, "detections": 4, "latency_ms_sum": 40.0},
        "2": {"frames": 1, "detections": 0, "latency_ms_sum": 5.0},
    }
    tally.reset()
    assert tally.to_dict() == {}


@dataclass
class _Counts:
    judged: int
    false_positives: int


def test_collect_figures_sums_cameras_and_adds_verdicts() -> None:
    cams: list[Any] = [
        {"1": {"frames": 10, "detections": 20, "latency_ms_sum": 500.0}},
        {
            "1": {"frames": 10, "detections": 0, "latency_ms_sum": 500.0},
            "2": {"frames": 5, "detections": 15, "latency_ms_sum": 100.0},
        },
        {"x": {"frames": 1}, "3": {"frames": "many"}},  # malformed: skipped
    ]
    figures = collect_figures(cams, {2: _Counts(4, 1), 7: _Counts(2, 2)})
    assert figures[1].detections_per_frame == 1.0 and figures[1].mean_latency_ms == 50.0
    assert figures[1].fp_rate is None
    assert figures[2].detections_per_frame == 3.0 and figures[2].fp_rate == 0.25
    assert figures[7].frames == 0 and figures[7].fp_rate == 1.0
    assert 3 not in figures


GUARD = CanaryGuardSettings(min_frames=10, min_judged=4)


def _fig(version: int, frames: int, per_frame: float, ms: float, judged: int = 0, fp: int = 0):  # type: ignore[no-untyped-def]
    return ModelFigures(version, frames, int(frames * per_frame), frames * ms, judged, fp)


@pytest.mark.parametrize(
    ("champion", "challenger", "trip"),
    [
        (_fig(1, 50, 2.0, 60), _fig(2, 50, 2.2, 65), None),
        (_fig(1, 50, 2.0, 60), _fig(2, 50, 0.5, 60), "detections per frame"),
        (_fig(1, 50, 2.0, 60), _fig(2, 50, 0.0, 60), "detections per frame 0.000 outside"),
        (_fig(1, 50, 2.0, 60), _fig(2, 50, 6.0, 60), "detections per frame"),
        (_fig(1, 50, 2.0, 60), _fig(2, 50, 2.0, 400), "latency"),
        (_fig(1, 50, 2.0, 60), _fig(2, 5, 0.0, 900), None),  # too few frames to judge
        (_fig(1, 50, 2.0, 60, 10, 1), _fig(2, 50, 2.0, 60, 10, 5), "false-positive"),
        (_fig(1, 50, 2.0, 60, 10, 1), _fig(2, 50, 2.0, 60, 3, 3), None),  # too few verdicts
        (_fig(1, 50, 0.0, 60), _fig(2, 50, 5.0, 60), "champion found none"),
        (None, _fig(2, 50, 9.0, 60), None),
    ],
)
def test_guard(champion: ModelFigures | None, challenger: ModelFigures, trip: str | None) -> None:
    reasons = guard_reasons(champion, challenger, GUARD)
    if trip is None:
        assert reasons == []
    else:
        assert len(reasons) == 1 and trip in reasons[0], reasons


def test_a_disabled_guard_never_trips() -> None:
    off = CanaryGuardSettings(enabled=False, min_frames=1)
    assert guard_reasons(_fig(1, 50, 2.0, 60), _fig(2, 50, 9.0, 900), off) == []


class _Ticks(threading.Event):
    """Fake time for a loop that waits on an event: each wait is one interval gone by; the
    event counts as set from the ``stop_after``-th wait on."""

    def __init__(self, stop_after: int) -> None:
        super().__init__()
        self.stop_after = stop_after
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return len(self.waits) >= self.stop_after


def test_the_guard_loop_checks_every_interval_and_outlives_a_failed_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unused: Any = None  # the loop reaches them only through check_guard, replaced below
    service = ModelService(
        registry=unused,
        repo=unused,
        serving=unused,
        audit=unused,
        models_dir=Path("unused"),
        input_size=640,
        guard=CanaryGuardSettings(interval_s=2.5),
    )
    outcomes: list[list[str] | Exception] = [RuntimeError("database down"), ["tripped"], []]
    checked: list[int] = []

    def check_guard() -> list[str]:
        checked.append(len(checked))
        out = outcomes[len(checked) - 1]
        if isinstance(out, Exception):
            raise out
        return out

    monkeypatch.setattr(service, "check_guard", check_guard)
    ticks = _Ticks(stop_after=4)
    service.guard_forever(ticks)
    assert len(checked) == 3  # the failed check did not end the loop
    assert ticks.waits == [2.5] * 4


@pytest.mark.parametrize(
    ("tags", "deployable"),
    [
        ({"gate": "passed"}, True),
        ({"gate": "baseline"}, True),
        ({"gate.passed": "true", "gate.reason": "beat the champion"}, True),
        ({"gate": "failed"}, False),
        ({"gate.passed": "false"}, False),
        ({"gate": "passed", "gate.passed": "false"}, False),
        ({}, False),
        ({"gate": "pending"}, False),
    ],
)
def test_gate_pass_is_required(tags: dict[str, str], deployable: bool) -> None:
    assert gate_passed(tags) is deployable
