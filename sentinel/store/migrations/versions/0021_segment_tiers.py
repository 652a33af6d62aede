"""Tiering: a segment's archive copy (key, sha256, when) and its restored local copy.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the tier columns to ``segments`` and index the restored copies' expiry."""
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("archive_key", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("archive_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("restored_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_segments_restored_until", "segments", ["restored_until"])


def downgrade() -> None:
    """Drop the tier columns (archived footage's rows stay, pointing at no local object)."""
    op.drop_index("ix_segments_restored_until", table_name="segments")
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("restored_until")
        batch.drop_column("archive_sha256")
        batch.drop_column("archive_key")
        batch.drop_column("archived_at")
