"""Legal holds: what a hold keeps, decided without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sentinel.domain.holds import (
    HeldRange,
    HoldView,
    export_holder,
    held_ranges,
    holding,
    kept_by_holds,
    validate_hold,
)
from sentinel.domain.retention import SegmentView

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def at(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def seg(sid: str, start_h_ago: float, cam: str = "a", **kw: Any) -> SegmentView:
    start = at(start_h_ago)
    return SegmentView(sid, cam, kw.pop("kind", "continuous"), start, start + H / 6, 100, **kw)


RANGE = HoldView("h1", "camera_range", "a", at(50), at(40))
OPEN = HoldView("h2", "camera_range", "b", at(30), None)
INCIDENT = HoldView("h3", "incident", "c", target_id="inc-1")
GONE = HoldView("h4", "incident", "c", target_id="inc-deleted")
EXPORT = HoldView("h5", "export", "a", target_id="exp-1")


def test_held_ranges_per_camera() -> None:
    ranges = held_ranges([RANGE, OPEN, INCIDENT, GONE, EXPORT], {"inc-1": ("c", at(60), at(59))})
    assert ranges == {
        "a": [HeldRange("h1", "a", at(50), at(40))],
        "b": [HeldRange("h2", "b", at(30), None)],
        "c": [HeldRange("h3", "c", at(60), at(59))],
    }


@pytest.mark.parametrize(
    ("camera", "start", "end", "expected"),
    [
        ("a", at(45), at(44), "h1"),  # inside
        ("a", at(51), at(50), "h1"),  # ends at the range's start: kept (bounds inclusive)
        ("a", at(40), at(39), "h1"),  # starts at its end
        ("a", at(52), at(51), None),  # before
        ("a", at(39), at(38), None),  # after
        ("a", at(60), None, "h1"),  # still going, started before: overlaps
        ("b", at(1000), at(29), "h2"),  # open-ended hold
        ("b", at(1000), at(31), None),
        ("x", at(45), at(44), None),  # another camera
    ],
    ids=["inside", "touch-start", "touch-end", "before", "after", "open-row", "open-hold",
         "before-open-hold", "other-camera"],
)  # fmt: skip
def test_holding(camera: str, start: datetime, end: datetime | None, expected: str | None) -> None:
    assert holding(held_ranges([RANGE, OPEN], {}), camera, start, end) == expected


def test_kept_by_holds_counts_only_expired_held_unexported_segments() -> None:
    ranges = held_ranges([RANGE], {})
    segments = [
        seg("held-old", 45),  # past 1 day retention, held: counted
        seg("held-exported", 45, exported=True),  # kept anyway
        seg("free-old", 100),  # past retention, not held: the sweep deletes it
        seg("held-event", 45, kind="event"),  # event footage kept forever here
        seg("other-cam", 45, cam="z"),
    ]
    kept = kept_by_holds(segments, ranges, now=NOW, policies={"a": (1.0, None), "z": (1.0, 1.0)})
    assert [(s.id, hold) for s, hold in kept] == [("held-old", "h1")]
    # Not past retention yet: nothing is kept *because of* the hold.
    assert kept_by_holds(segments, ranges, now=NOW, policies={"a": (30.0, None)}) == []


def test_an_export_is_held_by_name_or_by_the_footage_it_copies() -> None:
    holds = [RANGE, EXPORT]
    ranges = held_ranges(holds, {})
    assert export_holder("exp-1", "a", at(10), at(9), holds, ranges) == "h5"
    assert export_holder("exp-2", "a", at(45), at(44), holds, ranges) == "h1"
    assert export_holder("exp-3", "a", at(10), at(9), holds, ranges) is None


@pytest.mark.parametrize(
    ("kind", "fields", "error"),
    [
        ("forever", {}, "kind must be one of"),
        ("camera_range", {}, "needs start_at"),
        ("camera_range", {"start_at": at(2), "end_at": at(3)}, "end_at must be after"),
        ("camera_range", {"start_at": at(2), "target_id": "x"}, "no target_id"),
        ("camera_range", {"start_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ("incident", {}, "needs target_id"),
        ("export", {"target_id": ""}, "needs target_id"),
        ("incident", {"target_id": "i", "start_at": at(1)}, "takes no start_at"),
    ],
    ids=["kind", "no-start", "reversed", "range-target", "naive", "no-incident", "empty-export",
         "incident-range"],
)  # fmt: skip
def test_validate_hold_rejects(kind: str, fields: dict[str, Any], error: str) -> None:
    args: dict[str, Any] = {"start_at": None, "end_at": None, "target_id": None, **fields}
    with pytest.raises(ValueError, match=error):
        validate_hold(kind, **args)


def test_validate_hold_accepts() -> None:
    validate_hold("camera_range", start_at=at(2), end_at=None, target_id=None)
    validate_hold("camera_range", start_at=at(2), end_at=at(1), target_id=None)
    validate_hold("incident", start_at=None, end_at=None, target_id="inc-1")
    validate_hold("export", start_at=None, end_at=None, target_id="exp-1")
