"""Table of the hard-example mining jobs (issue 11): one row per job, so a job's status
survives a restart of the process that runs it.

Created by the Alembic migration ``0024_mining_jobs`` (keep both in step; a test compares
them). The repository is ``sentinel.store.mining_repo``.

- ``mining_jobs``: what was asked (``request``, JSON: camera, stretch, budget; ``camera_id``
  again as a column, for the callers' camera limits), who asked (``created_by``, when the API
  knows), the state (queued -> running -> done | failed, with ``error``), the counts, the
  result (``result``, JSON: the queued items' ids, the reasons, the skipped chunks' errors),
  the registry version that scanned, and when it was created, started and finished.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["MINING_JOBS", "MINING_JOB_STATES"]

MINING_JOB_STATES = frozenset({"queued", "running", "done", "failed"})

MINING_JOBS = sa.Table(
    "mining_jobs",
    SQLModel.metadata,
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
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_mining_jobs_created_at", "created_at"),
    sa.Index("ix_mining_jobs_state", "state"),
)
