"""Table model of the legal holds (issue 16): what no sweep or deletion may remove.

Created by the Alembic migration ``0019_legal_holds`` (keep both in step; a test compares
them). The repository is ``sentinel.store.hold_repo``; the decisions are
``sentinel.domain.holds``.

- ``legal_holds``: one hold. ``kind`` is ``camera_range`` (``camera_id`` from ``start_at`` to
  ``end_at``, null: until released), ``incident`` (``target_id``; its span on its camera) or
  ``export`` (``target_id``). A hold is released by setting ``released_at`` and
  ``released_by``; rows are never deleted, so the history of holds stays.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["LEGAL_HOLDS", "LegalHoldRow"]


class LegalHoldRow(SQLModel, table=True):
    """One legal hold, active until released."""

    __tablename__ = "legal_holds"
    __table_args__ = (
        sa.Index("ix_legal_holds_released_at", "released_at"),
        sa.Index("ix_legal_holds_camera_id", "camera_id"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    target_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    start_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    end_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    released_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    released_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))


# The Core table, for the repository's statements.
LEGAL_HOLDS: sa.Table = SQLModel.metadata.tables["legal_holds"]
