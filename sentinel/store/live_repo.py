"""What live updates read: the alerts' change log (the notifier outbox) and recent incidents.

Both reads are on indexed columns (the outbox's primary key, ``incidents.started_at``), so the
live hub can poll them a few times a second.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.store.agent_tables import ALERTS
from sentinel.store.clock import Repository
from sentinel.store.incident_tables import INCIDENTS
from sentinel.store.notify_tables import NOTIFY_OUTBOX
from sentinel.store.sql import as_utc


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One alert change (``kind``: new, update or end) with the alert's current fields."""

    seq: int
    kind: str
    camera_id: str
    alert: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IncidentState:
    camera_id: str
    incident: dict[str, Any]
    revision: int


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def alert_fields(r: Mapping[Any, Any], change: str) -> dict[str, Any]:
    """An alert's fields in a live message (from a row or ``dataclasses.asdict(record)``)."""
    severity = r["severity"]
    return {
        "change": change,
        "id": r["id"],
        "event_id": r["event_id"],
        "incident_id": r["incident_id"],
        "label": r["label"],
        "status": r["status"],
        "severity": str(getattr(severity, "value", severity)),
        "summary": r["summary"],
        "rule_explanation": r["rule_explanation"],
        "verdict": r["verdict"],
        "acknowledged": r["acknowledged_by"] is not None,
        "created_at": _iso(r["created_at"]),
        "updated_at": _iso(r["updated_at"]),
    }


class LiveChangesRepo(Repository):
    """Reads the changes the live hub publishes."""

    def outbox_head(self) -> int:
        """The newest outbox id (0 when empty)."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(NOTIFY_OUTBOX.c.id))).scalar() or 0)

    def alert_changes(self, after: int, limit: int = 500) -> builtins.list[AlertChange]:
        """Alert changes with an outbox id over ``after``, oldest first."""
        o, a = NOTIFY_OUTBOX.c, ALERTS.c
        stmt = (
            sa.select(
                o.id.label("seq"),
                o.kind.label("change"),
                a.id,
                a.event_id,
                a.incident_id,
                a.camera_id,
                a.label,
                a.status,
                a.severity,
                a.summary,
                a.rule_explanation,
                a.verdict,
                a.acknowledged_by,
                a.created_at,
                a.updated_at,
            )
            .join(ALERTS, a.id == o.alert_id)
            .where(o.id > after)
            .order_by(o.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            AlertChange(
                seq=int(r["seq"]),
                kind=str(r["change"]),
                camera_id=str(r["camera_id"]),
                alert=alert_fields(r, str(r["change"])),
            )
            for r in rows
        ]

    def incidents_since(self, since: datetime, limit: int = 2000) -> builtins.list[IncidentState]:
        """Incidents that started at or after ``since``, with their current revision."""
        c = INCIDENTS.c
        stmt = (
            sa.select(
                c.id,
                c.camera_id,
                c.started_at,
                c.last_seen_at,
                c.ended_at,
                c.status,
                c.labels,
                c.revision,
            )
            .where(c.started_at >= as_utc(since, "since"))
            .order_by(c.started_at)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            IncidentState(
                camera_id=str(r["camera_id"]),
                revision=int(r["revision"]),
                incident={
                    "id": r["id"],
                    "status": r["status"],
                    "labels": json.loads(r["labels"]),
                    "started_at": _iso(r["started_at"]),
                    "last_seen_at": _iso(r["last_seen_at"]),
                    "ended_at": _iso(r["ended_at"]),
                    "revision": int(r["revision"]),
                },
            )
            for r in rows
        ]
