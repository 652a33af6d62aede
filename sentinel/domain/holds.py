"""Legal holds: what they keep, decided without I/O.

A hold is on a camera range (``camera_id`` from ``start_at`` to ``end_at``; no end: until
released), an incident (its span on its camera: the footage, events and incidents of that
span, the incident itself included) or an export (the exported clip). While a hold is active,
nothing it keeps is swept, expired or deleted; once released, the next sweep treats the objects
like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from sentinel.domain.retention import Policies, SegmentView

__all__ = [
    "HOLD_KINDS",
    "HeldRange",
    "HoldKind",
    "HoldView",
    "export_holder",
    "held_exports",
    "held_ranges",
    "holding",
    "kept_by_holds",
    "validate_hold",
]

HoldKind = Literal["camera_range", "incident", "export"]
HOLD_KINDS: frozenset[str] = frozenset(get_args(HoldKind))
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class HoldView:
    """What the decisions need of an active hold."""

    id: str
    kind: str
    camera_id: str
    start_at: datetime | None = None
    end_at: datetime | None = None
    target_id: str | None = None


@dataclass(frozen=True, slots=True)
class HeldRange:
    """Footage time of one camera a hold keeps (``end_at`` None: open-ended)."""

    hold_id: str
    camera_id: str
    start_at: datetime
    end_at: datetime | None

    def overlaps(self, start: datetime, end: datetime | None) -> bool:
        """Whether ``[start, end]`` (``end`` None: still going) shares time with the range."""
        before_end = self.end_at is None or start <= self.end_at
        after_start = end is None or end >= self.start_at
        return before_end and after_start


def validate_hold(
    kind: str, *, start_at: datetime | None, end_at: datetime | None, target_id: str | None
) -> None:
    """Checks that a hold's fields fit its kind.

    Raises:
        ValueError: Saying what was expected and what came.
    """
    if kind not in HOLD_KINDS:
        raise ValueError(f"kind must be one of {sorted(HOLD_KINDS)}, but got {kind!r}")
    if kind == "camera_range":
        if start_at is None:
            raise ValueError("a camera_range hold needs start_at")
        if target_id is not None:
            raise ValueError("a camera_range hold has no target_id (it holds a time range)")
        for name, value in (("start_at", start_at), ("end_at", end_at)):
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware")
        if end_at is not None and end_at <= start_at:
            raise ValueError(f"end_at must be after start_at, but got {start_at} .. {end_at}")
        return
    if not target_id:
        raise ValueError(f"an {kind} hold needs target_id (the {kind}'s id)")
    if start_at is not None or end_at is not None:
        raise ValueError(f"an {kind} hold takes no start_at/end_at (it holds the {kind})")


def held_ranges(
    holds: Iterable[HoldView],
    incidents: Mapping[str, tuple[str, datetime, datetime | None]],
) -> dict[str, list[HeldRange]]:
    """Per camera, the footage time the active holds keep.

    Args:
        holds: The active holds.
        incidents: ``incident id -> (camera id, started_at, ended_at or None)`` of the held
            incidents that still exist (a missing one holds no range).

    Returns:
        Ranges by camera id, sorted by start.
    """
    out: dict[str, list[HeldRange]] = {}
    for hold in holds:
        if hold.kind == "camera_range" and hold.start_at is not None:
            held = HeldRange(hold.id, hold.camera_id, hold.start_at, hold.end_at)
        elif hold.kind == "incident" and hold.target_id and hold.target_id in incidents:
            camera_id, start, end = incidents[hold.target_id]
            held = HeldRange(hold.id, camera_id, start, end)
        else:
            continue
        out.setdefault(held.camera_id, []).append(held)
    for ranges in out.values():
        ranges.sort(key=lambda r: (r.start_at, r.hold_id))
    return out


def held_exports(holds: Iterable[HoldView]) -> dict[str, str]:
    """``export id -> hold id`` of the held exports."""
    return {h.target_id: h.id for h in holds if h.kind == "export" and h.target_id}


def holding(
    ranges: Mapping[str, Sequence[HeldRange]],
    camera_id: str,
    start: datetime,
    end: datetime | None,
) -> str | None:
    """The id of a hold keeping ``camera_id``'s ``[start, end]``, None if none does."""
    for held in ranges.get(camera_id, ()):
        if held.overlaps(start, end):
            return held.hold_id
    return None


def kept_by_holds(
    segments: Iterable[SegmentView],
    ranges: Mapping[str, Sequence[HeldRange]],
    *,
    now: datetime,
    policies: Policies,
) -> list[tuple[SegmentView, str]]:
    """The held segments past their camera's retention: what the sweep kept only because of
    a hold, each with the id of a hold keeping it (exported segments are kept anyway)."""
    kept: list[tuple[SegmentView, str]] = []
    for seg in segments:
        if seg.exported:
            continue
        continuous_days, event_days = policies.get(seg.camera_id, (None, None))
        days = continuous_days if seg.kind == "continuous" else event_days
        if days is None or seg.end_at > now - timedelta(seconds=days * _SECONDS_PER_DAY):
            continue
        hold_id = holding(ranges, seg.camera_id, seg.start_at, seg.end_at)
        if hold_id is not None:
            kept.append((seg, hold_id))
    return kept


def export_holder(
    export_id: str,
    camera_id: str,
    start: datetime,
    end: datetime,
    holds: Iterable[HoldView],
    ranges: Mapping[str, Sequence[HeldRange]],
) -> str | None:
    """The id of a hold keeping an export: one naming it, or one covering the footage it
    was cut from (a copy of held footage is held too). None if none does."""
    named = held_exports(holds).get(export_id)
    return named if named is not None else holding(ranges, camera_id, start, end)
