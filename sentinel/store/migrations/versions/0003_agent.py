"""Alert agent: alerts, agent_queue, prompts, prompt_active, experiments.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ALERT_INDEXES = (
    ("ix_alerts_experiment_id", ["experiment_id"]),
    ("ix_alerts_created_at", ["created_at"]),
    ("ix_alerts_camera_id_created_at", ["camera_id", "created_at"]),
)


def upgrade() -> None:
    """Create the agent's tables and their indexes."""
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("recommended_action", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(16), nullable=False),
        sa.Column("prompt_version", sa.String(64), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("backend", sa.String(64), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("parse_failures", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(36), nullable=True),
        sa.Column("variant", sa.String(64), nullable=True),
        sa.Column("llm_status", sa.String(16), nullable=False),
        sa.Column("llm_error", sa.Text(), nullable=True),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("verdict_note", sa.Text(), nullable=True),
        sa.Column("verdict_by", sa.String(255), nullable=True),
        sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_event_id", "alerts", ["event_id"], unique=True)
    for index, columns in _ALERT_INDEXES:
        op.create_index(index, "alerts", columns)

    op.create_table(
        "agent_queue",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_agent_queue"),
    )
    op.create_index("ix_agent_queue_status_enqueued_at", "agent_queue", ["status", "enqueued_at"])

    op.create_table(
        "prompts",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_prompts"),
    )
    op.create_table(
        "prompt_active",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_prompt_active"),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["prompts.name", "prompts.version"],
            name="fk_prompt_active_prompt",
        ),
    )

    op.create_table(
        "experiments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prompt_name", sa.String(128), nullable=False),
        sa.Column("variants", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("winner", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
    )
    op.create_index("ix_experiments_name", "experiments", ["name"], unique=True)
    op.create_index("ix_experiments_prompt_name", "experiments", ["prompt_name"])


def downgrade() -> None:
    """Drop the agent's tables (alerts and verdicts with them)."""
    op.drop_index("ix_experiments_prompt_name", table_name="experiments")
    op.drop_index("ix_experiments_name", table_name="experiments")
    op.drop_table("experiments")
    op.drop_table("prompt_active")
    op.drop_table("prompts")
    op.drop_index("ix_agent_queue_status_enqueued_at", table_name="agent_queue")
    op.drop_table("agent_queue")
    for index, _columns in _ALERT_INDEXES:
        op.drop_index(index, table_name="alerts")
    op.drop_index("ix_alerts_event_id", table_name="alerts")
    op.drop_table("alerts")
