"""Table models of the alert agent: alerts, the agent's work queue, prompts and experiments.

Like ``sentinel.store.tables`` these are storage rows, created by the Alembic migration
``0003_agent`` (keep both in step; a test compares them). JSON values (an alert's reasons, an
experiment's variants) are stored as JSON text. Enumerated values are plain strings validated
by the repositories (``sentinel.store.alert_repo``), so adding a value needs no migration.

- ``alerts``: one row per event (``event_id`` is unique) and at most one per incident
  (``incident_id``, added by ``0007_incidents``): the rules' decision, later amended by the LLM
  agent's, plus the operator's acknowledgement and verdict, and the operator's rule that
  matched it with the explanation (``rule_*``, added by ``0009_alert_rules``).
- ``agent_queue``: the events waiting for the LLM agent; workers lease items for a while, so
  an item whose worker died is leased again once its lease expires (``lease_token``, added
  by ``0006_agent_lease_token``, fences completions against a later lease).
- ``prompts`` / ``prompt_active``: versioned prompt templates and the version in use per name
  (a foreign key keeps an active version from being deleted).
- ``experiments``: A/B tests of prompt versions of one prompt name.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = [
    "AGENT_QUEUE",
    "ALERTS",
    "ALERT_STATUSES",
    "EXPERIMENTS",
    "EXPERIMENT_STATUSES",
    "LLM_STATUSES",
    "PROMPTS",
    "PROMPT_ACTIVE",
    "QUEUE_STATUSES",
    "VERDICTS",
    "AgentQueueRow",
    "AlertRow",
    "ExperimentRow",
    "PromptActiveRow",
    "PromptRow",
]

ALERT_STATUSES = frozenset({"open", "acknowledged", "withdrawn"})
LLM_STATUSES = frozenset({"pending", "done", "shed", "failed", "skipped"})
VERDICTS = frozenset({"true_positive", "false_positive"})
QUEUE_STATUSES = frozenset({"pending", "leased", "done", "shed", "failed"})
EXPERIMENT_STATUSES = frozenset({"running", "stopped"})


class AlertRow(SQLModel, table=True):
    """The alert decision about one event; ``reasons`` is a JSON list of strings."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_event_id", "event_id", unique=True),
        sa.Index("ix_alerts_camera_id_created_at", "camera_id", "created_at"),
        sa.Index("ix_alerts_created_at", "created_at"),
        sa.Index("ix_alerts_experiment_id", "experiment_id"),
        sa.Index("ix_alerts_incident_id", "incident_id", unique=True),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    event_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    # Indexed through ix_alerts_camera_id_created_at (its leading column).
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    label: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    alert: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    severity: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    summary: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    reasons: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    recommended_action: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    decided_by: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    prompt_version: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    model: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    backend: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    latency_ms: float | None = Field(default=None, sa_column=sa.Column(sa.Float()))
    prompt_tokens: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    completion_tokens: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    parse_failures: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    experiment_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    variant: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    llm_status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    llm_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    acknowledged_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    acknowledged_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    verdict: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    verdict_note: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    verdict_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    verdict_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    # The incident this alert is about (one alert per incident); None for per-event alerts.
    incident_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    # The operator's rule that raised (or also matched) this alert and why (``0009``).
    rule_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    rule_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    rule_explanation: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))


class AgentQueueRow(SQLModel, table=True):
    """An event waiting for (or handled by) the LLM agent."""

    __tablename__ = "agent_queue"
    __table_args__ = (sa.Index("ix_agent_queue_status_enqueued_at", "status", "enqueued_at"),)

    event_id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    enqueued_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    attempts: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    leased_until: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    # A fresh value per lease (migration 0006): a completion must bring the token of the
    # lease it finishes, so a worker whose lease expired cannot undo the next worker's result.
    lease_token: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))


class PromptRow(SQLModel, table=True):
    """One version of a named prompt (versions count from 1 per name)."""

    __tablename__ = "prompts"

    name: str = Field(sa_column=sa.Column(sa.String(128), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer(), primary_key=True, autoincrement=False))
    system: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    template: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))


class PromptActiveRow(SQLModel, table=True):
    """The version of a prompt name in use; it must exist in ``prompts``."""

    __tablename__ = "prompt_active"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["prompts.name", "prompts.version"],
            name="fk_prompt_active_prompt",
        ),
    )

    name: str = Field(sa_column=sa.Column(sa.String(128), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))


class ExperimentRow(SQLModel, table=True):
    """An A/B test of prompt versions; ``variants`` is JSON ``[{name, prompt_version, weight}]``."""

    __tablename__ = "experiments"
    __table_args__ = (
        sa.Index("ix_experiments_name", "name", unique=True),
        sa.Index("ix_experiments_prompt_name", "prompt_name"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    prompt_name: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    variants: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    winner: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


# Core tables, for the repositories' statements.
ALERTS: sa.Table = SQLModel.metadata.tables["alerts"]
AGENT_QUEUE: sa.Table = SQLModel.metadata.tables["agent_queue"]
PROMPTS: sa.Table = SQLModel.metadata.tables["prompts"]
PROMPT_ACTIVE: sa.Table = SQLModel.metadata.tables["prompt_active"]
EXPERIMENTS: sa.Table = SQLModel.metadata.tables["experiments"]
