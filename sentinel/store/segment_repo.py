"""The index of the recordings: which segment of which camera covers which wall-clock time.

``SegmentRepository`` keeps one row per MP4 segment stored in the object store (the object
itself is written by ``sentinel.video.segments.finalize_segment``). Reads are by camera and time
range (``range``, ``timeline``), by age for the retention sweep (``oldest``, ``usage``) and
against the object store's listing for the startup reconciliation (``orphans``, ``keys``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.recording_tables import SEGMENT_KINDS, SEGMENTS
from sentinel.store.sql import (
    TimeRanges,
    as_utc,
    check_choice,
    overlapping,
    upsert_insert,
    utc_range,
)

__all__ = [
    "SEGMENT_KINDS",
    "SegmentInfo",
    "SegmentRecord",
    "SegmentRepository",
    "SegmentUsage",
    "Timeline",
]

_MAX_LIMIT = 10_000
_BATCH = 1000


@dataclass(frozen=True)
class SegmentInfo:
    """A finished, probed temp file for ``on_segment``; ``start``/``end``: stream seconds of the
    first frame and of the end of the last, ``wall_*`` the same on the clock."""

    path: Path
    start: float
    end: float
    wall_start: datetime
    wall_end: datetime
    size: int
    codec: str
    transcoded: bool
    frames: int


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """A stored segment: ``[start_at, end_at)`` of ``camera_id`` in the object ``object_key``."""

    id: str
    camera_id: str
    start_at: datetime
    end_at: datetime
    duration_s: float
    size: int
    codec: str
    transcoded: bool
    object_key: str
    created_at: datetime
    kind: str
    exported: bool
    archived_at: datetime | None = None  # a verified copy is in the archive store
    archive_key: str | None = None
    archive_sha256: str | None = None
    restored_until: datetime | None = None  # an archived segment's local copy is kept until

    @property
    def archived(self) -> bool:
        """Whether the segment is in the archive (its local object may be a restored copy)."""
        return self.archived_at is not None


@dataclass(frozen=True, slots=True)
class Timeline:
    """The segments overlapping ``[start, end]`` (ascending) and the gaps between them.

    ``gaps`` are ``(start, end)`` pairs inside ``[start, end]``, ascending: the uncovered time
    before the first segment, between segments and after the last one (longer than the
    ``max_gap_s`` asked for); the whole range when there is no segment.
    """

    start: datetime
    end: datetime
    segments: list[SegmentRecord]
    gaps: list[tuple[datetime, datetime]]

    @property
    def covered_s(self) -> float:
        """Seconds of ``[start, end]`` not in a gap."""
        missing = sum((b - a).total_seconds() for a, b in self.gaps)
        return (self.end - self.start).total_seconds() - missing


class SegmentUsage(NamedTuple):
    """Storage used by one camera's segments."""

    camera_id: str
    bytes: int
    oldest_start: datetime


def _to_record(row: sa.RowMapping) -> SegmentRecord:
    return SegmentRecord(
        id=row["id"],
        camera_id=row["camera_id"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        duration_s=float(row["duration_s"]),
        size=int(row["size"]),
        codec=row["codec"],
        transcoded=bool(row["transcoded"]),
        object_key=row["object_key"],
        created_at=row["created_at"],
        kind=row["kind"],
        exported=bool(row["exported"]),
        archived_at=row["archived_at"],
        archive_key=row["archive_key"],
        archive_sha256=row["archive_sha256"],
        restored_until=row["restored_until"],
    )


class SegmentRepository(Repository):
    """Reads and writes the index of recorded segments.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (for ``created_at``); injectable for tests.
    """

    def add(self, camera_id: str, info: SegmentInfo, object_key: str, kind: str) -> SegmentRecord:
        """Index a segment stored under ``object_key``; idempotent by ``object_key``.

        Args:
            camera_id: The camera that recorded it.
            info: The finished segment (its wall times, size, codec).
            object_key: Where the segment's bytes are in the object store.
            kind: ``"continuous"`` or ``"event"``.

        Returns:
            The stored row: the new one, or the one already indexed under ``object_key``.

        Raises:
            ValueError: If ``kind`` is unknown, a wall time is naive or ends before it starts.
        """
        check_choice(kind, SEGMENT_KINDS, "kind")
        if not camera_id:
            raise ValueError("camera_id must not be empty")
        start, end = utc_range(info.wall_start, info.wall_end)
        stmt = upsert_insert(self._engine, SEGMENTS).values(
            id=str(uuid.uuid4()),
            camera_id=camera_id,
            start_at=start,
            end_at=end,
            duration_s=float(info.end - info.start),
            size=int(info.size),
            codec=info.codec,
            transcoded=bool(info.transcoded),
            object_key=object_key,
            created_at=as_utc(self._clock(), "clock()"),
            kind=kind,
            exported=False,
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=[SEGMENTS.c.object_key])
        query = sa.select(SEGMENTS).where(SEGMENTS.c.object_key == object_key)
        with self._engine.begin() as conn:
            conn.execute(stmt)
            return _to_record(conn.execute(query).mappings().one())

    def get(self, segment_id: str) -> SegmentRecord | None:
        """The segment with this id, or None."""
        query = sa.select(SEGMENTS).where(SEGMENTS.c.id == segment_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_record(row)

    def range(self, camera_id: str, start: datetime, end: datetime) -> list[SegmentRecord]:
        """The camera's segments overlapping ``[start, end]``, by ``start_at`` ascending.

        A segment overlaps when it starts at or before ``end`` and ends after ``start`` (one
        that ended exactly at ``start`` holds no frame of the range).

        Raises:
            ValueError: If a bound is naive or ``end`` is before ``start``.
        """
        start, end = utc_range(start, end)
        c = SEGMENTS.c
        query = (
            sa.select(SEGMENTS)
            .where(c.camera_id == camera_id, c.start_at <= end, c.end_at > start)
            .order_by(c.start_at, c.id)
        )
        with self._engine.connect() as conn:
            return [_to_record(row) for row in conn.execute(query).mappings()]

    def timeline(
        self, camera_id: str, start: datetime, end: datetime, max_gap_s: float = 1.0
    ) -> Timeline:
        """The camera's segments in ``[start, end]`` and the gaps longer than ``max_gap_s``.

        Raises:
            ValueError: If a bound is naive, ``end`` is before ``start`` or ``max_gap_s`` < 0.
        """
        if max_gap_s < 0:
            raise ValueError(f"max_gap_s must be >= 0, but got {max_gap_s}")
        start, end = utc_range(start, end)
        segments = self.range(camera_id, start, end)
        tolerance = timedelta(seconds=max_gap_s)
        gaps: list[tuple[datetime, datetime]] = []
        covered = start  # everything before this is covered or already a gap
        for seg in segments:
            if seg.start_at - covered > tolerance:
                gaps.append((covered, min(seg.start_at, end)))
            covered = max(covered, seg.end_at)
        if end - covered > tolerance or (not segments and end > start):
            gaps.append((min(covered, end), end))
        return Timeline(start, end, segments, gaps)

    def delete(self, segment_id: str) -> bool:
        """Delete the row (not the object); False if there was none."""
        with self._engine.begin() as conn:
            done = conn.execute(sa.delete(SEGMENTS).where(SEGMENTS.c.id == segment_id))
        return done.rowcount > 0

    def set_exported(self, segment_id: str, exported: bool = True) -> bool:
        """Mark a segment kept for an exported clip (never swept), or release it.

        Returns:
            False if there is no such segment.
        """
        stmt = sa.update(SEGMENTS).where(SEGMENTS.c.id == segment_id).values(exported=exported)
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount > 0

    def oldest(
        self,
        camera_id: str | None = None,
        kinds: Collection[str] = SEGMENT_KINDS,
        include_exported: bool = False,
        limit: int = 100,
        excluding: TimeRanges = (),
        archived: bool | None = None,
        ended_before: datetime | None = None,
    ) -> list[SegmentRecord]:
        """The oldest segments (by ``start_at``), for the retention sweep and the archive pass.

        Args:
            camera_id: Only this camera's; None: every camera's.
            kinds: Only segments of these kinds.
            include_exported: Also segments kept for an exported clip (never swept).
            limit: The most rows, 1 to 10000.
            excluding: Leave out the segments overlapping these ranges (legal holds), so held
                footage never fills the page the sweep plans from.
            archived: True: only archived segments; False: only segments not archived yet;
                None: both.
            ended_before: Only segments that ended at or before this time.

        Raises:
            ValueError: If ``limit`` is out of bounds, a kind is unknown or a time naive.
        """
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}, but got {limit}")
        unknown = set(kinds) - SEGMENT_KINDS
        if unknown:
            raise ValueError(f"unknown segment kinds {sorted(unknown)}")
        c = SEGMENTS.c
        query = sa.select(SEGMENTS).where(c.kind.in_(sorted(kinds)))
        if camera_id is not None:
            query = query.where(c.camera_id == camera_id)
        if not include_exported:
            query = query.where(c.exported == sa.false())
        if excluding:
            query = query.where(sa.not_(overlapping(c.start_at, c.end_at, excluding)))
        if archived is not None:
            query = query.where(c.archived_at.is_not(None) if archived else c.archived_at.is_(None))
        if ended_before is not None:
            query = query.where(c.end_at <= as_utc(ended_before, "ended_before"))
        query = query.order_by(c.start_at, c.id).limit(limit)
        with self._engine.connect() as conn:
            return [_to_record(row) for row in conn.execute(query).mappings()]

    def usage(self) -> list[SegmentUsage]:
        """Bytes stored locally and the oldest segment's start, per camera (by camera id).

        Archived segments count only while a restored copy is kept (``restored_until`` set).
        """
        c = SEGMENTS.c
        local = sa.case(
            (sa.or_(c.archived_at.is_(None), c.restored_until.is_not(None)), c.size), else_=0
        )
        query = (
            sa.select(c.camera_id, sa.func.sum(local), sa.func.min(c.start_at))
            .group_by(c.camera_id)
            .order_by(c.camera_id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            SegmentUsage(cam, int(total or 0), as_utc(first, "oldest start"))
            for cam, total, first in rows
        ]

    def keys(self, camera_id: str) -> set[str]:
        """The object keys of the camera's segments."""
        query = sa.select(SEGMENTS.c.object_key).where(SEGMENTS.c.camera_id == camera_id)
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def orphans(
        self, keys_in_store: Collection[str], *, camera_id: str | None = None
    ) -> list[SegmentRecord]:
        """The rows whose object is not in ``keys_in_store`` (the object was lost or deleted).

        Archived segments are never orphans: their footage is in the archive store.

        Args:
            keys_in_store: Every key present in the object store (of the camera, if given).
            camera_id: Only this camera's rows; None: all (then pass every camera's keys).

        Returns:
            The orphan rows, by ``object_key``.
        """
        present = set(keys_in_store)
        c = SEGMENTS.c
        found: list[SegmentRecord] = []
        after: str | None = None
        with self._engine.connect() as conn:
            while True:  # keyset pages by object_key: bounded memory on large archives
                query = sa.select(SEGMENTS).order_by(c.object_key).limit(_BATCH)
                if camera_id is not None:
                    query = query.where(c.camera_id == camera_id)
                if after is not None:
                    query = query.where(c.object_key > after)
                rows = [_to_record(row) for row in conn.execute(query).mappings()]
                found.extend(
                    row for row in rows if row.object_key not in present and not row.archived
                )
                if len(rows) < _BATCH:
                    return found
                after = rows[-1].object_key

    def mark_archived(
        self, segment_id: str, archive_key: str, sha256: str, at: datetime
    ) -> SegmentRecord | None:
        """Record a verified archive copy; the local copy is marked as kept until ``at`` (the
        caller deletes it next, then calls ``clear_restored``: a crash in between leaves a
        copy the restores' expiry removes). Idempotent: an archived row is left as it is.

        Returns:
            The row, or None if the segment is gone (deleted meanwhile).
        """
        at = as_utc(at, "at")
        c = SEGMENTS.c
        stmt = (
            sa.update(SEGMENTS)
            .where(c.id == segment_id, c.archived_at.is_(None))
            .values(
                archived_at=at, archive_key=archive_key, archive_sha256=sha256, restored_until=at
            )
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(sa.select(SEGMENTS).where(c.id == segment_id)).mappings().first()
        return None if row is None else _to_record(row)

    def keep_restored(self, segment_ids: Collection[str], until: datetime) -> int:
        """Keep the local copies of these archived segments until at least ``until``.

        Returns:
            How many rows were extended.
        """
        if not segment_ids:
            return 0
        until = as_utc(until, "until")
        c = SEGMENTS.c
        stmt = (
            sa.update(SEGMENTS)
            .where(
                c.id.in_(sorted(segment_ids)),
                c.archived_at.is_not(None),
                sa.or_(c.restored_until.is_(None), c.restored_until < until),
            )
            .values(restored_until=until)
        )
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def clear_restored(self, segment_id: str, expected: datetime | None = None) -> bool:
        """Mark an archived segment's local copy gone; with ``expected``, only if
        ``restored_until`` still equals it (a play since then kept the copy).

        Returns:
            Whether the row was changed.
        """
        c = SEGMENTS.c
        stmt = sa.update(SEGMENTS).where(c.id == segment_id, c.archived_at.is_not(None))
        if expected is not None:
            stmt = stmt.where(c.restored_until == as_utc(expected, "expected"))
        with self._engine.begin() as conn:
            return conn.execute(stmt.values(restored_until=None)).rowcount > 0

    def restores_due(self, now: datetime, limit: int = _BATCH) -> list[SegmentRecord]:
        """Archived segments whose local copy is kept until ``now`` or earlier (oldest first)."""
        c = SEGMENTS.c
        query = (
            sa.select(SEGMENTS)
            .where(c.archived_at.is_not(None), c.restored_until <= as_utc(now, "now"))
            .order_by(c.restored_until, c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_to_record(row) for row in conn.execute(query).mappings()]
