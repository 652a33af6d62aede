"""Alerts name the operator's rule that matched them and why.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``alerts.rule_id``, ``rule_version`` and ``rule_explanation``."""
    op.add_column("alerts", sa.Column("rule_id", sa.String(36), nullable=True))
    op.add_column("alerts", sa.Column("rule_version", sa.Integer(), nullable=True))
    op.add_column("alerts", sa.Column("rule_explanation", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the alerts' rule columns."""
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("rule_explanation")
        batch.drop_column("rule_version")
        batch.drop_column("rule_id")
