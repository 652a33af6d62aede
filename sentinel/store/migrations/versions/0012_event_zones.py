"""Events record the zones their object was in (for the history RuleGen backtests on).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``events.zones`` (NULL for the events stored before)."""
    op.add_column("events", sa.Column("zones", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop ``events.zones``."""
    with op.batch_alter_table("events") as batch:
        batch.drop_column("zones")
