"""Agent queue: a lease token fences a worker's completion against a later lease.

Revision ID: 0006
Revises: 0005
Create Date: 2025-05-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``agent_queue.lease_token`` (null until an item is leased)."""
    with op.batch_alter_table("agent_queue") as batch:
        batch.add_column(sa.Column("lease_token", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop ``agent_queue.lease_token``: completions are no longer fenced."""
    with op.batch_alter_table("agent_queue") as batch:
        batch.drop_column("lease_token")
