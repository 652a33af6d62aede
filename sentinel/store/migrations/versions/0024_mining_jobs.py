"""Hard-example mining jobs, one row per job (their statuses survive a restart).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``mining_jobs``."""
    op.create_table(
        "mining_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("chunks_skipped", sa.Integer(), nullable=False),
        sa.Column("frames_scanned", sa.Integer(), nullable=False),
        sa.Column("frames_skipped", sa.Integer(), nullable=False),
        sa.Column("chosen", sa.Integer(), nullable=False),
        sa.Column("enqueued", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mining_jobs_created_at", "mining_jobs", ["created_at"])
    op.create_index("ix_mining_jobs_state", "mining_jobs", ["state"])


def downgrade() -> None:
    """Drop ``mining_jobs`` (the queued frames stay; only the jobs' statuses go)."""
    op.drop_index("ix_mining_jobs_state", table_name="mining_jobs")
    op.drop_index("ix_mining_jobs_created_at", table_name="mining_jobs")
    op.drop_table("mining_jobs")
