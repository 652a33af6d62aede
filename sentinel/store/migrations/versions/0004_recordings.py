"""Recordings: segments (MP4 objects of the VMS, indexed by camera and time).

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_segments_camera_id_start_at", ["camera_id", "start_at"]),
    ("ix_segments_camera_id_end_at", ["camera_id", "end_at"]),
    ("ix_segments_start_at", ["start_at"]),
)


def upgrade() -> None:
    """Create the segments table and its indexes."""
    op.create_table(
        "segments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("transcoded", sa.Boolean(), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("exported", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
    )
    op.create_index("ix_segments_object_key", "segments", ["object_key"], unique=True)
    for index, columns in _INDEXES:
        op.create_index(index, "segments", columns)


def downgrade() -> None:
    """Drop the segments table (the index of the recordings; the objects stay)."""
    for index, _columns in _INDEXES:
        op.drop_index(index, table_name="segments")
    op.drop_index("ix_segments_object_key", table_name="segments")
    op.drop_table("segments")
