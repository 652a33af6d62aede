"""The dashboard's counts: events and alerts per UTC hour, on SQLite and PostgreSQL.

The hour of a row is computed in SQL as the text ``YYYY-MM-DD HH`` (SQLite keeps UTC wall
times as text, so it is a prefix; PostgreSQL formats the UTC time), then grouped: the database
returns one row per group and hour, never the rows themselves.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.store.agent_tables import ALERTS
from sentinel.store.clock import Repository
from sentinel.store.sql import as_utc
from sentinel.store.tables import EVENTS


def hour_bucket(column: Any, dialect: str) -> sa.ColumnElement[str]:
    """``column`` (a UTCDateTime) as its UTC hour, ``YYYY-MM-DD HH``."""
    if dialect == "sqlite":
        return sa.func.substr(column, 1, 13)
    utc = sa.func.timezone("UTC", column)
    return sa.func.to_char(utc, "YYYY-MM-DD HH24")


class DashboardRepo(Repository):
    """Grouped counts over ``[start, end)``, only of ``cameras`` when given (None: all)."""

    def event_counts(
        self, start: datetime, end: datetime, cameras: Collection[str] | None
    ) -> builtins.list[dict[str, Any]]:
        """Rows of ``camera_id``, ``label``, ``bucket`` and ``n`` (events started then)."""
        c = EVENTS.c
        bucket = hour_bucket(c.started_at, self._engine.dialect.name).label("bucket")
        stmt = (
            sa.select(c.camera_id, c.label, bucket, sa.func.count().label("n"))
            .where(c.started_at >= as_utc(start, "start"), c.started_at < as_utc(end, "end"))
            .group_by(c.camera_id, c.label, bucket)
        )
        if cameras is not None:
            stmt = stmt.where(c.camera_id.in_(sorted(cameras)))
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def alert_counts(
        self, start: datetime, end: datetime, cameras: Collection[str] | None
    ) -> builtins.list[dict[str, Any]]:
        """Rows of ``bucket``, ``n``, ``true_positive``, ``false_positive`` and
        ``acknowledged``: the alerts (decisions that alerted) created in each hour."""
        c = ALERTS.c
        bucket = hour_bucket(c.created_at, self._engine.dialect.name).label("bucket")

        def count_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
            return sa.func.sum(sa.case((cond, 1), else_=0))

        stmt = (
            sa.select(
                bucket,
                sa.func.count().label("n"),
                count_if(c.verdict == "true_positive").label("true_positive"),
                count_if(c.verdict == "false_positive").label("false_positive"),
                count_if(c.acknowledged_at.is_not(None)).label("acknowledged"),
            )
            .where(
                c.alert.is_(True),
                c.created_at >= as_utc(start, "start"),
                c.created_at < as_utc(end, "end"),
            )
            .group_by(bucket)
        )
        if cameras is not None:
            stmt = stmt.where(c.camera_id.in_(sorted(cameras)))
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]
