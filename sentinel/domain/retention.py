"""Which recorded segments a storage sweep deletes: pure, no I/O.

``plan_sweep`` first deletes what is past its camera's retention (continuous and event footage
each have their own), then, while the archive is over its byte budget or the disk has less free
space than asked, the oldest footage: continuous before event. Segments kept for an exported
clip are never deleted. With tiering, budget and free space count local copies only: archived
footage leaves only by retention, and footage due for the archive but not archived yet (its
copy unverified) is never deleted to make room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "Deletion",
    "DerivedCutoffs",
    "Policies",
    "Reason",
    "SegmentView",
    "derived_cutoffs",
    "past_retention",
    "plan_sweep",
    "row_cutoffs",
]

Reason = Literal["retention", "budget", "low_space"]
Policies = Mapping[str, tuple[float | None, float | None]]
"""camera id -> (continuous footage days, event footage days); None: kept forever."""

_CONTINUOUS = "continuous"
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SegmentView:
    """What the planner needs of a stored segment."""

    id: str
    camera_id: str
    kind: str  # "continuous" or "event"
    start_at: datetime
    end_at: datetime
    size: int
    exported: bool = False
    archived: bool = False  # in the archive store: deleting it frees no local space
    awaiting_archive: bool = False  # due for the archive, its copy not verified yet


@dataclass(frozen=True, slots=True)
class Deletion:
    """One segment to delete, and why."""

    segment_id: str
    camera_id: str
    reason: Reason
    size: int


def _expired(seg: SegmentView, now: datetime, policies: Policies) -> bool:
    continuous_days, event_days = policies.get(seg.camera_id, (None, None))
    days = continuous_days if seg.kind == _CONTINUOUS else event_days
    if days is None:
        return False
    # All of the segment's footage must be older than the retention, not just its start.
    return seg.end_at <= now - timedelta(seconds=days * _SECONDS_PER_DAY)


def past_retention(seg: SegmentView, now: datetime, policies: Policies) -> bool:
    """Whether all of the segment's footage is older than its camera's retention."""
    return _expired(seg, now, policies)


def plan_sweep(
    segments: Sequence[SegmentView],
    *,
    now: datetime,
    policies: Policies,
    used_bytes: int,
    budget_bytes: int | None,
    free_bytes: int | None,
    min_free_bytes: int,
) -> list[Deletion]:
    """The deletions of one sweep, in the order to run them.

    Args:
        segments: The candidate segments (any order; exported ones are skipped).
        now: The current time (tz-aware, like the segments' times).
        policies: Retention days per camera and kind; a camera not in it keeps its footage
            (only the budget and free space limit it).
        used_bytes: Bytes the whole archive uses now (exported segments included).
        budget_bytes: The archive's byte budget; None: no budget.
        free_bytes: Free bytes on the store's disk now; None: unknown (S3), not checked.
        min_free_bytes: Keep at least this much free on the disk.

    Returns:
        Retention deletions first (oldest first), then the budget or low-space ones (oldest
        continuous footage, then oldest event footage) until both limits are met or nothing
        deletable is left.

    Raises:
        ValueError: If a byte count is negative.
    """
    for name, value in (("used_bytes", used_bytes), ("min_free_bytes", min_free_bytes)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, but got {value}")
    if budget_bytes is not None and budget_bytes < 0:
        raise ValueError(f"budget_bytes must be >= 0, but got {budget_bytes}")
    candidates = sorted(
        (s for s in segments if not s.exported), key=lambda s: (s.start_at, s.camera_id, s.id)
    )
    plan: list[Deletion] = []
    planned: set[str] = set()
    freed = 0

    def take(seg: SegmentView, reason: Reason) -> None:
        nonlocal freed
        plan.append(Deletion(seg.id, seg.camera_id, reason, seg.size))
        planned.add(seg.id)
        freed += seg.size

    for seg in candidates:
        if seg.id not in planned and _expired(seg, now, policies):
            take(seg, "retention")

    def pressure() -> Reason | None:
        if budget_bytes is not None and used_bytes - freed > budget_bytes:
            return "budget"
        if free_bytes is not None and free_bytes + freed < min_free_bytes:
            return "low_space"
        return None

    by_age = sorted(
        (
            s
            for s in candidates
            if s.id not in planned and not s.archived and not s.awaiting_archive
        ),
        key=lambda s: (s.kind != _CONTINUOUS, s.start_at, s.camera_id, s.id),
    )
    for seg in by_age:
        reason = pressure()
        if reason is None:
            break
        take(seg, reason)
    return plan


def row_cutoffs(policies: Policies, now: datetime) -> dict[str, datetime]:
    """Per camera, the time before which its ended events and incidents are deleted: they
    follow the camera's event footage retention (a camera keeping event footage forever, or
    not in ``policies``, keeps its rows)."""
    return {
        camera_id: now - timedelta(seconds=event_days * _SECONDS_PER_DAY)
        for camera_id, (_, event_days) in policies.items()
        if event_days is not None
    }


@dataclass(frozen=True, slots=True)
class DerivedCutoffs:
    """One camera's cut-offs for derived data: rows that ended (alerts: were created) before
    them are deleted; None: kept."""

    events: datetime | None
    incidents: datetime | None
    snapshots: datetime | None
    alerts: datetime | None


def derived_cutoffs(
    policies: Policies,
    cameras: Sequence[str],
    *,
    now: datetime,
    events_days: float | None = None,
    incidents_days: float | None = None,
    snapshots_days: float | None = None,
    alerts_days: float | None = None,
) -> dict[str, DerivedCutoffs]:
    """Per camera, when its derived data expires.

    Events and incidents have their own period when set, else follow the camera's event
    footage retention (``row_cutoffs``); snapshots go with their events, or sooner with
    ``snapshots_days``; alerts only with ``alerts_days``.

    Args:
        policies: Retention days per camera (footage).
        cameras: Every camera with derived data (those not in ``policies`` too).
        now: The current time.
        events_days: Events' own period.
        incidents_days: Incidents' own period.
        snapshots_days: Snapshots' own period (never longer than their events').
        alerts_days: Alerts' period.

    Raises:
        ValueError: A period is not positive.
    """
    for name, value in (
        ("events_days", events_days),
        ("incidents_days", incidents_days),
        ("snapshots_days", snapshots_days),
        ("alerts_days", alerts_days),
    ):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0, but got {value}")

    def ago(days: float | None) -> datetime | None:
        return None if days is None else now - timedelta(seconds=days * _SECONDS_PER_DAY)

    footage = row_cutoffs(policies, now)
    out: dict[str, DerivedCutoffs] = {}
    for camera_id in sorted({*cameras, *policies}):
        events = ago(events_days) if events_days is not None else footage.get(camera_id)
        incidents = ago(incidents_days) if incidents_days is not None else footage.get(camera_id)
        own = ago(snapshots_days)
        # A snapshot never outlives its event: the later of the two cut-offs deletes first.
        snapshots = max((c for c in (own, events) if c is not None), default=None)
        out[camera_id] = DerivedCutoffs(events, incidents, snapshots, ago(alerts_days))
    return out
