"""Tiering decisions, pure (no I/O): which segments move to the archive now, which restored
copies expire, and how far a playback restore has come.

A segment is archived once all of its footage is older than its camera's archive age
(``record.archive_after_days``, else ``archive.after_days``), unless it is exported, covered by
a legal hold, archived already, or past its retention (the sweep deletes it instead). The I/O
(upload, verify, mark, delete the local copy; restores) is ``sentinel.retention.archive``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sentinel.domain.holds import HeldRange, holding
from sentinel.domain.retention import Policies, SegmentView, past_retention

__all__ = [
    "ArchiveAges",
    "RestoreProgress",
    "archive_age",
    "awaiting_archive",
    "plan_archive",
    "plan_expiry",
]

_SECONDS_PER_DAY = 86400.0

ArchiveAges = Mapping[str, float | None]
"""camera id -> the camera's own archive age in days (``record.archive_after_days``)."""


def archive_age(camera_id: str, ages: ArchiveAges, default_days: float | None) -> float | None:
    """The camera's archive age in days: its own, else the default; None: never archived."""
    own = ages.get(camera_id)
    return own if own is not None else default_days


def _due(seg: SegmentView, now: datetime, ages: ArchiveAges, default_days: float | None) -> bool:
    days = archive_age(seg.camera_id, ages, default_days)
    if days is None:
        return False
    # All of the segment's footage must be older than the age, not just its start.
    return seg.end_at <= now - timedelta(seconds=days * _SECONDS_PER_DAY)


def awaiting_archive(
    seg: SegmentView, *, now: datetime, ages: ArchiveAges, default_days: float | None
) -> bool:
    """Whether a segment is due for the archive but not archived yet (exported footage stays
    local and is never due): the sweep must not delete it to make room."""
    return not seg.archived and not seg.exported and _due(seg, now, ages, default_days)


def plan_archive(
    segments: Iterable[SegmentView],
    *,
    now: datetime,
    ages: ArchiveAges,
    default_days: float | None,
    held: Mapping[str, Sequence[HeldRange]],
    policies: Policies,
    limit: int,
) -> list[SegmentView]:
    """The segments to archive now, oldest first, at most ``limit``.

    Args:
        segments: Candidate segments (any order).
        now: The current time (tz-aware).
        ages: Per camera, its own archive age in days (None or absent: the default).
        default_days: The archive age of cameras without their own; None: not archived.
        held: Per camera, the footage time legal holds keep (never archived while held).
        policies: Retention days per camera: footage past retention is left to the sweep.
        limit: The most segments (>= 0).

    Raises:
        ValueError: If ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, but got {limit}")
    chosen = [
        seg
        for seg in segments
        if not seg.archived
        and not seg.exported
        and _due(seg, now, ages, default_days)
        and not past_retention(seg, now, policies)
        and holding(held, seg.camera_id, seg.start_at, seg.end_at) is None
    ]
    chosen.sort(key=lambda s: (s.start_at, s.camera_id, s.id))
    return chosen[:limit]


def plan_expiry(restored: Iterable[tuple[str, datetime | None]], now: datetime) -> list[str]:
    """The ids whose restored local copy expires: kept until ``now`` or earlier.

    Args:
        restored: ``(segment id, restored_until)`` of archived segments (None: no copy kept).
        now: The current time (tz-aware).
    """
    return [sid for sid, until in restored if until is not None and until <= now]


@dataclass(frozen=True, slots=True)
class RestoreProgress:
    """How far the restore of a playback range has come."""

    segments: int
    segments_ready: int
    bytes: int
    bytes_ready: int
    failed: int = 0

    @property
    def done(self) -> bool:
        return self.segments_ready + self.failed >= self.segments

    @property
    def fraction(self) -> float:
        """Bytes restored / bytes to restore (1.0 when nothing is to restore)."""
        return 1.0 if self.bytes <= 0 else min(1.0, self.bytes_ready / self.bytes)

    def retry_after_s(self, elapsed_s: float, floor_s: int = 1, ceiling_s: int = 60) -> int:
        """Seconds a client should wait before asking again: the time the rest should take
        at the rate so far, bounded."""
        if self.bytes_ready <= 0 or elapsed_s <= 0:
            return max(floor_s, min(ceiling_s, 2))
        rest = (self.bytes - self.bytes_ready) * elapsed_s / self.bytes_ready
        return int(max(floor_s, min(ceiling_s, math.ceil(rest))))

    def to_dict(self) -> dict[str, float | int]:
        return {
            "segments": self.segments,
            "segments_ready": self.segments_ready,
            "bytes": self.bytes,
            "bytes_ready": self.bytes_ready,
            "failed": self.failed,
            "progress": round(self.fraction, 4),
        }
