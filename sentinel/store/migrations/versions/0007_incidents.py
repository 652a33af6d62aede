"""Incidents: a camera's overlapping events grouped; alerts reference their incident.

Revision ID: 0007
Revises: 0006
Create Date: 2026-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("incidents", "ix_incidents_camera_id_started_at", ["camera_id", "started_at"]),
    ("incidents", "ix_incidents_started_at", ["started_at"]),
    ("incident_members", "ix_incident_members_event_id", ["event_id"]),
    ("incident_members", "ix_incident_members_label", ["label"]),
)


def upgrade() -> None:
    """Create the incident tables and add ``alerts.incident_id`` (one alert per incident)."""
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_id", sa.String(36), nullable=True),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("zones", sa.Text(), nullable=False),
        sa.Column("key_frames", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_table(
        "incident_members",
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "event_id", name="pk_incident_members"),
    )
    for table, index, columns in _INDEXES:
        op.create_index(index, table, columns)
    op.add_column("alerts", sa.Column("incident_id", sa.String(36), nullable=True))
    op.create_index("ix_alerts_incident_id", "alerts", ["incident_id"], unique=True)


def downgrade() -> None:
    """Drop the incident tables and ``alerts.incident_id``."""
    op.drop_index("ix_alerts_incident_id", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("incident_id")
    for table, index, _columns in _INDEXES:
        op.drop_index(index, table_name=table)
    op.drop_table("incident_members")
    op.drop_table("incidents")
