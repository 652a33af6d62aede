"""Exports: kept clips of the recordings (MP4 objects outside the retention sweep).

Revision ID: 0005
Revises: 0004
Create Date: 2025-04-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_exports_camera_id_created_at", ["camera_id", "created_at"]),
    ("ix_exports_created_at", ["created_at"]),
)


def upgrade() -> None:
    """Create the exports table and its indexes."""
    op.create_table(
        "exports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
    )
    op.create_index("ix_exports_object_key", "exports", ["object_key"], unique=True)
    for index, columns in _INDEXES:
        op.create_index(index, "exports", columns)


def downgrade() -> None:
    """Drop the exports table (the index of the exports; the objects stay)."""
    for index, _columns in _INDEXES:
        op.drop_index(index, table_name="exports")
    op.drop_index("ix_exports_object_key", table_name="exports")
    op.drop_table("exports")
