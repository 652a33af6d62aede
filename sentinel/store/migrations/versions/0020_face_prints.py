"""Face prints: sealed face embeddings in keyed buckets, and which events were scanned.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``face_prints`` and ``face_scans``, both deleted with their event."""
    op.create_table(
        "face_prints",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.id", ondelete="CASCADE", name="fk_face_prints_event_id"),
            nullable=False,
        ),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_face_prints_bucket", "face_prints", ["bucket"])
    op.create_index("ix_face_prints_event_id", "face_prints", ["event_id"])
    op.create_table(
        "face_scans",
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.id", ondelete="CASCADE", name="fk_face_scans_event_id"),
            primary_key=True,
        ),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    """Drop ``face_scans`` and ``face_prints``."""
    op.drop_table("face_scans")
    op.drop_index("ix_face_prints_event_id", table_name="face_prints")
    op.drop_index("ix_face_prints_bucket", table_name="face_prints")
    op.drop_table("face_prints")
