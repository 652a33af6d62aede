"""RuleGen suggestions keep their reason, a dedupe key, when their figures were refreshed and
the rule their acceptance wrote.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "rulegen_suggestions"
_KEY_INDEX = "uq_rulegen_suggestions_dedupe_key"


def upgrade() -> None:
    """Add ``dedupe_key`` (unique; NULL for rows written before it), ``reason``,
    ``updated_at`` and ``rule_id`` to ``rulegen_suggestions``."""
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("dedupe_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rule_id", sa.String(64), nullable=True))
    op.create_index(_KEY_INDEX, _TABLE, ["dedupe_key"], unique=True)


def downgrade() -> None:
    """Drop the columns again."""
    op.drop_index(_KEY_INDEX, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("rule_id")
        batch.drop_column("updated_at")
        batch.drop_column("reason")
        batch.drop_column("dedupe_key")
