"""Tiering decisions, table-driven: which segments are archived now, which restored copies
expire, the sweep's plan with archived footage, and the restore progress."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.domain.holds import HeldRange
from sentinel.domain.retention import SegmentView, plan_sweep
from sentinel.retention.tiering import (
    RestoreProgress,
    archive_age,
    awaiting_archive,
    plan_archive,
    plan_expiry,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def seg(
    sid: str, days_ago: float, cam: str = "a", *, exported: bool = False, archived: bool = False,
    minutes: float = 10, size: int = 100, kind: str = "continuous",
) -> SegmentView:  # fmt: skip
    start = NOW - timedelta(days=days_ago)
    return SegmentView(
        sid, cam, kind, start, start + timedelta(minutes=minutes), size, exported, archived
    )


HOLD = {"a": [HeldRange("h1", "a", NOW - timedelta(days=40), NOW - timedelta(days=39))]}


@pytest.mark.parametrize(
    ("name", "segments", "ages", "default", "held", "policies", "limit", "expected"),
    [
        ("older than the default age", [seg("s1", 31)], {}, 30.0, {}, {}, 10, ["s1"]),
        ("younger than the default age", [seg("s1", 29)], {}, 30.0, {}, {}, 10, []),
        # all of the footage must be older: a segment ending after the cutoff waits
        ("straddles the cutoff", [seg("s1", 30, minutes=60)], {}, 30.0, {}, {}, 10, []),
        ("camera's own age wins (shorter)", [seg("s1", 8)], {"a": 7.0}, 30.0, {}, {}, 10, ["s1"]),
        ("camera's own age wins (longer)", [seg("s1", 31)], {"a": 60.0}, 30.0, {}, {}, 10, []),
        ("no default: only cameras with an age", [seg("s1", 31), seg("s2", 31, "b")],
         {"b": 1.0}, None, {}, {}, 10, ["s2"]),
        ("no age at all", [seg("s1", 400)], {}, None, {}, {}, 10, []),
        ("exported stays local", [seg("s1", 31, exported=True)], {}, 30.0, {}, {}, 10, []),
        ("archived already", [seg("s1", 31, archived=True)], {}, 30.0, {}, {}, 10, []),
        ("held", [seg("s1", 39.5), seg("s2", 38)], {}, 30.0, HOLD, {}, 10, ["s2"]),
        ("a hold on another camera", [seg("s1", 39.5, "b")], {}, 30.0, HOLD, {}, 10, ["s1"]),
        ("past retention: left to the sweep", [seg("s1", 31), seg("s2", 61)], {}, 30.0, {},
         {"a": (60.0, 60.0)}, 10, ["s1"]),
        ("oldest first, up to the limit", [seg("s3", 31), seg("s1", 33), seg("s2", 32)], {},
         30.0, {}, {}, 2, ["s1", "s2"]),
        ("limit 0", [seg("s1", 31)], {}, 30.0, {}, {}, 0, []),
    ],
)  # fmt: skip
def test_plan_archive(
    name: str,
    segments: list[SegmentView],
    ages: dict[str, float | None],
    default: float | None,
    held: dict[str, list[HeldRange]],
    policies: dict[str, tuple[float | None, float | None]],
    limit: int,
    expected: list[str],
) -> None:
    plan = plan_archive(
        segments,
        now=NOW,
        ages=ages,
        default_days=default,
        held=held,
        policies=policies,
        limit=limit,
    )
    assert [s.id for s in plan] == expected, name


def test_plan_archive_refuses_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit must be >= 0"):
        plan_archive([], now=NOW, ages={}, default_days=1, held={}, policies={}, limit=-1)


@pytest.mark.parametrize(
    ("cam", "ages", "default", "expected"),
    [("a", {}, 30.0, 30.0), ("a", {"a": 2.0}, 30.0, 2.0), ("a", {"a": None}, 5.0, 5.0),
     ("a", {"b": 2.0}, None, None)],
)  # fmt: skip
def test_archive_age(
    cam: str, ages: dict[str, float | None], default: float | None, expected: float | None
) -> None:
    assert archive_age(cam, ages, default) == expected


@pytest.mark.parametrize(
    ("segment", "expected"),
    [(seg("s", 31), True), (seg("s", 29), False), (seg("s", 31, archived=True), False),
     (seg("s", 31, exported=True), False)],
)  # fmt: skip
def test_awaiting_archive(segment: SegmentView, expected: bool) -> None:
    assert awaiting_archive(segment, now=NOW, ages={}, default_days=30.0) is expected


@pytest.mark.parametrize(
    ("restored", "expected"),
    [
        ([("s1", NOW - timedelta(seconds=1)), ("s2", NOW + timedelta(seconds=1))], ["s1"]),
        ([("s1", NOW)], ["s1"]),  # kept "until now": expired
        ([("s1", None)], []),  # no local copy kept
        ([], []),
    ],
)
def test_plan_expiry(restored: list[tuple[str, datetime | None]], expected: list[str]) -> None:
    assert plan_expiry(restored, NOW) == expected


def test_budget_pressure_spares_archived_and_unverified_footage() -> None:
    archived = seg("old-archived", 50, archived=True)
    waiting = dataclasses.replace(seg("due", 40), awaiting_archive=True)
    local = seg("young", 5)
    plan = plan_sweep(
        [archived, waiting, local],
        now=NOW,
        policies={},
        used_bytes=1000,
        budget_bytes=10,
        free_bytes=None,
        min_free_bytes=0,
    )
    assert [(d.segment_id, d.reason) for d in plan] == [("young", "budget")]
    # Retention still deletes archived footage (the sweep removes its archive copy).
    plan = plan_sweep(
        [archived, waiting, local],
        now=NOW,
        policies={"a": (45.0, 45.0)},
        used_bytes=0,
        budget_bytes=None,
        free_bytes=None,
        min_free_bytes=0,
    )
    assert [(d.segment_id, d.reason) for d in plan] == [("old-archived", "retention")]


@pytest.mark.parametrize(
    ("progress", "done", "fraction", "retry"),
    [
        (RestoreProgress(0, 0, 0, 0), True, 1.0, 2),
        (RestoreProgress(4, 0, 400, 0), False, 0.0, 2),
        (RestoreProgress(4, 2, 400, 200), False, 0.5, 2),  # 200 more bytes at 100 B/s
        (RestoreProgress(4, 3, 400, 300, failed=1), True, 0.75, 1),
        (RestoreProgress(4, 1, 4_000_000, 1), False, 0.0, 60),  # bounded
    ],
)
def test_restore_progress(
    progress: RestoreProgress, done: bool, fraction: float, retry: int
) -> None:
    assert progress.done is done
    assert progress.fraction == pytest.approx(fraction, abs=1e-6)
    assert progress.retry_after_s(elapsed_s=2.0) == retry
    assert progress.to_dict()["segments"] == progress.segments
