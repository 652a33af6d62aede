"""Incidents in the database: idempotent upserts (the newest revision wins) and queries.

Like events, incident writes may be replayed (a retried batch, a restarted camera) or arrive
out of order; ``IncidentRepository.upsert`` is one ``INSERT ... ON CONFLICT DO UPDATE ...
WHERE stored.revision <= new.revision`` statement, so a stale state never overwrites a newer
one, and member rows are only ever added.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.domain.incidents import Incident, IncidentStatus, KeyFrame
from sentinel.store.clock import Repository
from sentinel.store.incident_tables import INCIDENT_MEMBERS, INCIDENTS
from sentinel.store.search_tables import enqueue_in
from sentinel.store.sql import (
    MAX_PAGE_SIZE,
    InvalidCursor,
    TimeRanges,
    decode_cursor,
    encode_cursor,
    overlapping,
    require_aware,
    upsert_insert,
)
from sentinel.store.sql import count_held as sql_count_held

__all__ = ["IncidentPage", "IncidentRepository", "InvalidCursor"]


@dataclass(frozen=True, slots=True)
class IncidentPage:
    """One page of incidents, newest first; ``next_cursor`` is None on the last page."""

    items: list[Incident]
    next_cursor: str | None


def _to_incident(row: sa.RowMapping) -> Incident:
    frames = json.loads(row["key_frames"])
    return Incident(
        id=row["id"],
        camera_id=row["camera_id"],
        started_at=row["started_at"],
        last_seen_at=row["last_seen_at"],
        ended_at=row["ended_at"],
        members=tuple(str(m) for m in json.loads(row["members"])),
        labels=tuple(str(label) for label in json.loads(row["labels"])),
        key_frames=tuple(
            KeyFrame(str(f["event_id"]), str(f["label"]), float(f["score"]), _iso(f["at"]))
            for f in frames
        ),
        zones=tuple(str(z) for z in json.loads(row["zones"])),
        previous_id=row["previous_id"],
        revision=int(row["revision"]),
    )


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


class IncidentRepository(Repository):
    """Reads and idempotently writes incidents.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (for ``updated_at``); injectable for tests.
    """

    def upsert(self, incident: Incident, labels_of: dict[str, str] | None = None) -> None:
        """Insert the incident, or update it unless the stored revision is newer.

        Args:
            incident: The incident's state from its camera's tracker.
            labels_of: Each member's label by event id (for the member rows); members missing
                here take the incident's first label.

        Raises:
            ValueError: If a datetime of ``incident`` is naive.
        """
        for name in ("started_at", "last_seen_at", "ended_at"):
            require_aware(getattr(incident, name), f"incident.{name}")
        values: dict[str, Any] = {
            "id": incident.id,
            "camera_id": incident.camera_id,
            "started_at": incident.started_at,
            "last_seen_at": incident.last_seen_at,
            "ended_at": incident.ended_at,
            "status": incident.status.value,
            "previous_id": incident.previous_id,
            "members": json.dumps(list(incident.members)),
            "labels": json.dumps(list(incident.labels)),
            "zones": json.dumps(list(incident.zones)),
            "key_frames": json.dumps(
                [
                    {"event_id": f.event_id, "label": f.label, "score": f.score, "at": _stamp(f.at)}
                    for f in incident.key_frames
                ]
            ),
            "revision": int(incident.revision),
            "updated_at": self._clock(),
        }
        stmt = upsert_insert(self._engine, INCIDENTS).values(**values)
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[INCIDENTS.c.id],
            set_={name: new[name] for name in values if name != "id"},
            where=INCIDENTS.c.revision <= new.revision,
        ).returning(INCIDENTS.c.id)
        default = incident.labels[0] if incident.labels else ""
        members = [
            {
                "incident_id": incident.id,
                "event_id": member,
                "label": (labels_of or {}).get(member, default),
            }
            for member in incident.members
        ]
        with self._engine.begin() as conn:
            written = conn.execute(stmt).first() is not None
            if written and incident.ended_at is not None:
                # A closed incident is (re)indexed for search, queued in this transaction.
                enqueue_in(conn, incident.id, "incident", "upsert", values["updated_at"])
            if members:
                insert = upsert_insert(self._engine, INCIDENT_MEMBERS).values(members)
                conn.execute(insert.on_conflict_do_nothing())

    def get(self, incident_id: str) -> Incident | None:
        """The incident with this id, or None."""
        query = sa.select(INCIDENTS).where(INCIDENTS.c.id == incident_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_incident(row)

    def of_event(self, event_id: str) -> builtins.list[str]:
        """The ids of the incidents ``event_id`` is a member of (a split makes several)."""
        c = INCIDENT_MEMBERS.c
        query = sa.select(c.incident_id).where(c.event_id == event_id).order_by(c.incident_id)
        with self._engine.connect() as conn:
            return [str(i) for i in conn.execute(query).scalars()]

    def count_held(self, camera_id: str, ended_before: datetime, keep: TimeRanges) -> int:
        """How many of the camera's incidents that ended before ``ended_before`` share time with
        ``keep`` (what ``expire`` keeps because of legal holds)."""
        return sql_count_held(self._engine, INCIDENTS, camera_id, ended_before, keep)

    def expire(
        self, camera_id: str, ended_before: datetime, limit: int = 500, keep: TimeRanges = ()
    ) -> builtins.list[str]:
        """Delete up to ``limit`` of the camera's incidents that ended before ``ended_before``
        (oldest first) with their member rows; each leaves the search index through the queue
        (op "delete"), queued in the same transaction. Incidents sharing time with a ``keep``
        range (legal holds) are not deleted.

        Returns:
            The ids of the deleted incidents.

        Raises:
            ValueError: If ``ended_before`` is naive or ``limit`` is below 1.
        """
        require_aware(ended_before, "ended_before")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, but got {limit}")
        c = INCIDENTS.c
        query = (
            sa.select(c.id)
            .where(c.camera_id == camera_id, c.ended_at.is_not(None), c.ended_at < ended_before)
            .order_by(c.ended_at, c.id)
            .limit(limit)
        )
        if keep:  # legal holds: rows sharing time with a held range stay
            query = query.where(sa.not_(overlapping(c.started_at, c.ended_at, keep)))
        now = self._clock()
        with self._engine.begin() as conn:
            ids = [str(i) for i in conn.execute(query).scalars()]
            if ids:
                m = INCIDENT_MEMBERS.c
                conn.execute(sa.delete(INCIDENT_MEMBERS).where(m.incident_id.in_(ids)))
                conn.execute(sa.delete(INCIDENTS).where(c.id.in_(ids)))
                for incident_id in ids:
                    enqueue_in(conn, incident_id, "incident", "delete", now)
        return ids

    def open_incidents(self, camera_id: str) -> builtins.list[Incident]:
        """The camera's incidents that are still open, oldest first."""
        c = INCIDENTS.c
        query = (
            sa.select(INCIDENTS)
            .where(c.camera_id == camera_id, c.status == IncidentStatus.OPEN.value)
            .order_by(c.started_at, c.id)
        )
        with self._engine.connect() as conn:
            return [_to_incident(row) for row in conn.execute(query).mappings()]

    def recent(self, camera_id: str, before: datetime, limit: int = 5) -> builtins.list[Incident]:
        """The camera's incidents that started before ``before``, newest first."""
        page = self.list(camera_id=camera_id, until=before, limit=limit + 1)
        return [i for i in page.items if i.started_at < before][:limit]

    def list(
        self,
        *,
        camera_id: str | None = None,
        camera_ids: Collection[str] | None = None,
        label: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> IncidentPage:
        """One page of incidents, newest first by ``(started_at, id)`` descending.

        ``since``/``until`` select incidents whose ``[started_at, ended_at]`` overlaps them
        (an open incident is ongoing), as for events.

        Args:
            camera_id: Only this camera's incidents.
            camera_ids: Only incidents of these cameras (an access scope); empty matches none.
            label: Only incidents with a member of this label.
            status: Only "open" or only "closed" incidents.
            since: Lower bound of the time window (tz-aware).
            until: Upper bound of the time window (tz-aware).
            cursor: ``next_cursor`` of the previous page.
            limit: Page size, 1 to ``MAX_PAGE_SIZE``.

        Raises:
            InvalidCursor: If ``cursor`` is malformed.
            ValueError: If ``limit`` or ``status`` is invalid or a datetime is naive.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, but got {limit}")
        if status is not None and status not in {s.value for s in IncidentStatus}:
            raise ValueError(f"status must be 'open' or 'closed', but got {status!r}")
        require_aware(since, "since")
        require_aware(until, "until")
        c = INCIDENTS.c
        query = sa.select(INCIDENTS)
        if camera_id is not None:
            query = query.where(c.camera_id == camera_id)
        if camera_ids is not None:
            query = query.where(c.camera_id.in_(sorted(set(camera_ids))))
        if status is not None:
            query = query.where(c.status == status)
        if label is not None:
            m = INCIDENT_MEMBERS.c
            query = query.where(sa.exists().where(m.incident_id == c.id, m.label == label))
        if since is not None:
            query = query.where(sa.or_(c.ended_at.is_(None), c.ended_at >= since))
        if until is not None:
            query = query.where(c.started_at <= until)
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(c.started_at < after_at, sa.and_(c.started_at == after_at, c.id < after_id))
            )
        query = query.order_by(c.started_at.desc(), c.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = [_to_incident(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(items[-1].started_at, items[-1].id)
        return IncidentPage(items=items, next_cursor=next_cursor)


def _stamp(value: datetime) -> str:
    require_aware(value, "key frame time")
    return value.isoformat()
