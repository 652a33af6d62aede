"""Table model of the training runs (the learning loop): one row per fine-tuning run.

Created by the Alembic migration ``0018_training_runs`` (keep both in step; a test compares them).
The repository is ``sentinel.store.training_repo``. ``status`` moves queued -> curating ->
training -> evaluating -> succeeded (or failed, with ``error``); ``epoch``/``step``/``loss`` are
the live progress the training worker writes; ``attempts`` counts worker restarts (a killed
worker resumes from its last checkpoint, ``checkpoint_epoch``, the last one Ray Train registered:
``resumed_epoch``/``resumed_step``); ``gate`` and
``counts`` are JSON documents (the gate report, the curation counts).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["TRAINING_RUNS", "TRAINING_STATUSES", "TrainingRunRow"]

TRAINING_STATUSES = frozenset(
    {"queued", "curating", "training", "evaluating", "succeeded", "failed"}
)


class TrainingRunRow(SQLModel, table=True):
    """One training run of a dataset version."""

    __tablename__ = "training_runs"
    __table_args__ = (sa.Index("ix_training_runs_created_at", "created_at"),)

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    dataset: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    dataset_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    epochs: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    epoch: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    step: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    total_steps: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    loss: float | None = Field(default=None, sa_column=sa.Column(sa.Float()))
    attempts: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    checkpoint_epoch: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    resumed_epoch: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    resumed_step: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    worker_pid: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    mlflow_run_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    challenger_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer()))
    gate_passed: bool | None = Field(default=None, sa_column=sa.Column(sa.Boolean()))
    gate: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    counts: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    params: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))


# The Core table, for the repository's statements.
TRAINING_RUNS: sa.Table = SQLModel.metadata.tables["training_runs"]
