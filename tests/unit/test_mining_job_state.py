"""A mining job's states, without a database: queued -> running -> done | failed, a finished
job stays finished, and ``run_job`` tells ``on_change`` each change (what the service stores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sentinel.train.mine_service import MiningJob, MiningRequest, run_job
from sentinel.train.mining import MiningParams

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def job() -> MiningJob:
    return MiningJob.of(MiningRequest("gate", T0, T0 + timedelta(minutes=1), 5), "root")


def test_a_job_moves_from_queued_to_running_to_failed_once() -> None:
    j = job()
    assert j.state == "queued" and not j.finished and j.created_by == "root"
    j.mark_running(T0)
    assert (j.state, j.started_at) == ("running", T0)
    with pytest.raises(ValueError, match="only a queued job starts"):
        j.mark_running(T0)
    j.mark_failed("x" * 5000, T0 + timedelta(seconds=1))
    assert j.finished and j.state == "failed" and len(j.error or "") == 1000
    j.mark_failed("again", T0 + timedelta(seconds=2))  # a finished job keeps its end
    assert j.error == "x" * 1000 and j.finished_at == T0 + timedelta(seconds=1)


def test_a_queued_job_can_fail_before_it_runs() -> None:
    j = job()
    j.mark_failed("no model to mine with", T0)
    assert j.state == "failed" and j.started_at is None and j.finished_at == T0


class BrokenSegments:
    def range(self, *_: Any) -> list[Any]:
        raise RuntimeError("the segment index is unreachable")


def test_run_job_reports_each_change_to_on_change() -> None:
    seen: list[tuple[str, str | None]] = []
    j = job()
    out = run_job(
        j,
        engine=None,  # type: ignore[arg-type]
        segments=BrokenSegments(),  # type: ignore[arg-type]
        params=MiningParams(threshold=0.5),
        scan_map=lambda chunks: [],
        render_map=lambda groups: [],
        enqueue=lambda candidates: [],
        queued=lambda camera: [],
        on_change=lambda changed: seen.append((changed.state, changed.error)),
    )
    assert out is j and j.state == "failed" and j.started_at is not None
    assert seen == [("running", None), ("failed", j.error)]
    assert j.error is not None and "unreachable" in j.error


def test_a_failing_store_does_not_raise_out_of_run_job() -> None:
    calls: list[str] = []

    def store(changed: MiningJob) -> None:
        calls.append(changed.state)
        raise OSError("database away")

    j = run_job(
        job(),
        engine=None,  # type: ignore[arg-type]
        segments=BrokenSegments(),  # type: ignore[arg-type]
        params=MiningParams(threshold=0.5),
        scan_map=lambda chunks: [],
        render_map=lambda groups: [],
        enqueue=lambda candidates: [],
        queued=lambda camera: [],
        on_change=store,
    )
    assert j.state == "failed" and calls == ["running", "failed"]
