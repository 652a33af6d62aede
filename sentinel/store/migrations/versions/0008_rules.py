"""Alert rules with their versions, the arming mode and RuleGen suggestions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-03-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("rules", "ix_rules_deleted_at", ["deleted_at"]),
    (
        "rulegen_suggestions",
        "ix_rulegen_suggestions_status_created_at",
        ["status", "created_at"],
    ),
)


def upgrade() -> None:
    """Create the rule tables and the arming row (mode "away", revision 0)."""
    op.create_table(
        "rules",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
    )
    op.create_table(
        "rule_versions",
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "version", name="pk_rule_versions"),
    )
    arming = op.create_table(
        "arming",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_arming"),
    )
    op.create_table(
        "rulegen_suggestions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("backtest", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rulegen_suggestions"),
    )
    for table, index, columns in _INDEXES:
        op.create_index(index, table, columns)
    op.bulk_insert(arming, [{"id": 1, "mode": "away", "revision": 0}])


def downgrade() -> None:
    """Drop the rule tables."""
    for table, index, _columns in _INDEXES:
        op.drop_index(index, table_name=table)
    op.drop_table("rulegen_suggestions")
    op.drop_table("arming")
    op.drop_table("rule_versions")
    op.drop_table("rules")
