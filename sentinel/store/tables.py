"""Table models of the store (sqlmodel), shared by SQLite and PostgreSQL.

These are storage rows, not API models: repositories turn them into plain dataclasses
(``sentinel.store.repo``) and the API layer has its own schemas. The schema itself is created by
the Alembic migrations in ``sentinel/store/migrations``; keep both in step (a test compares them).

Datetimes are stored with ``UTCDateTime``: timezone-aware UTC in, timezone-aware UTC out, on
both databases (SQLite keeps no offset, so values are normalised to UTC before they are written
and tagged UTC when read).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "CAMERAS",
    "EVENTS",
    "CameraRow",
    "EventRow",
    "UTCDateTime",
]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that only accepts and returns tz-aware UTC datetimes.

    Naive datetimes are refused on write: guessing their zone is how events end up an hour off.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, but got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; pass a tz-aware one")
        utc = value.astimezone(UTC)
        # SQLite's DATETIME text has no offset: store the UTC wall time so values sort and
        # compare as strings in time order.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class CameraRow(SQLModel, table=True):
    """One configured camera; ``config`` is the camera's config dict as JSON text; ``scene``
    its zones, lines and masks as last edited through the API (JSON), which win over the
    config's own (NULL: the config's)."""

    __tablename__ = "cameras"

    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    config: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    scene: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class EventRow(SQLModel, table=True):
    """One event (a tracked object's appearance), as last upserted by the pipeline.

    ``box`` is the best frame's box as JSON ``[x1, y1, x2, y2]``; ``path`` is the track's path as
    JSON ``[[x, y], ...]``; ``zones`` the camera's zones it was in, JSON ``["name", ...]`` (NULL
    for events stored before zones were recorded).
    """

    __tablename__ = "events"
    __table_args__ = (sa.Index("ix_events_camera_id_started_at", "camera_id", "started_at"),)

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    # Indexed through ix_events_camera_id_started_at (its leading column): a separate camera_id
    # index would only slow writes down.
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    label: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, index=True))
    score: float = Field(sa_column=sa.Column(sa.Float(), nullable=False))
    track_id: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    started_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    ended_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    last_seen_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    box: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    best_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    hits: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    path: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    zones: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    snapshot_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(1024)))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    # The detector's registry version that opened the event (NULL: unknown / before 0017).
    model_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))


# Core tables, for the repositories' INSERT ... ON CONFLICT and keyset queries.
CAMERAS: sa.Table = SQLModel.metadata.tables["cameras"]
EVENTS: sa.Table = SQLModel.metadata.tables["events"]
