"""Table models of incidents (created by the Alembic migration ``0007_incidents``).

- ``incidents``: one row per incident, as last upserted by its camera: the newest ``revision``
  wins. ``members``, ``labels``, ``zones`` and ``key_frames`` are JSON text.
- ``incident_members``: which events belong to which incident (for filters by label and for
  finding an event's incident); rows are only ever added.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["INCIDENTS", "INCIDENT_MEMBERS", "IncidentMemberRow", "IncidentRow"]


class IncidentRow(SQLModel, table=True):
    """One incident of one camera."""

    __tablename__ = "incidents"
    __table_args__ = (
        sa.Index("ix_incidents_camera_id_started_at", "camera_id", "started_at"),
        sa.Index("ix_incidents_started_at", "started_at"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    started_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    previous_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    members: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    labels: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    zones: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    key_frames: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    revision: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class IncidentMemberRow(SQLModel, table=True):
    """An event of an incident, with its label (for ``label`` filters)."""

    __tablename__ = "incident_members"
    __table_args__ = (
        sa.Index("ix_incident_members_event_id", "event_id"),
        sa.Index("ix_incident_members_label", "label"),
    )

    incident_id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    event_id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    label: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


INCIDENTS: sa.Table = SQLModel.metadata.tables["incidents"]
INCIDENT_MEMBERS: sa.Table = SQLModel.metadata.tables["incident_members"]
