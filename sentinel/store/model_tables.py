"""The detector's serving state: which registry version is champion, the canary in force.

Created by the migration ``0017_model_serving`` (with ``events.model_version``); keep both in
step (a test compares them).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["MODEL_SERVING", "ModelServingRow"]


class ModelServingRow(SQLModel, table=True):
    """One serving state (key "detector"), a JSON document changed by compare-and-set on
    ``revision`` so two writers never interleave a promotion and a rollback."""

    __tablename__ = "model_serving"

    key: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    state: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    revision: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


MODEL_SERVING: sa.Table = SQLModel.metadata.tables["model_serving"]
