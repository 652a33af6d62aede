"""The detector's serving state (champion, canary) and the model version of each event.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``model_serving``; add ``events.model_version`` (NULL for earlier events)."""
    op.create_table(
        "model_serving",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("events", sa.Column("model_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop ``events.model_version`` and ``model_serving``."""
    with op.batch_alter_table("events") as batch:
        batch.drop_column("model_version")
    op.drop_table("model_serving")
