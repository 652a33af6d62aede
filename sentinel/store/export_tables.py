"""Table model of the exports (VMS): kept clips that no retention sweep deletes.

Like ``sentinel.store.recording_tables`` this is a storage row, created by the Alembic
migration ``0005_exports`` (keep both in step; a test compares them). The repository is
``sentinel.store.export_repo``.

- ``exports``: one MP4 clip of ``camera_id`` from ``start_at`` to ``end_at``, assembled from the
  recorded segments and stored under ``object_key`` (unique; ``exports/<camera_id>/<id>.mp4``,
  outside the ``recordings/`` prefix the retention sweep works on). ``status`` is ``"ready"`` or
  ``"failed"`` (then ``error`` says why and there is no object); ``created_by`` is the subject
  of the principal who asked for it. Only an explicit delete removes an export.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["EXPORTS", "EXPORT_STATUSES", "ExportRow"]

EXPORT_STATUSES = frozenset({"ready", "failed"})


class ExportRow(SQLModel, table=True):
    """One exported clip (an MP4 object) of one camera."""

    __tablename__ = "exports"
    __table_args__ = (
        sa.Index("ix_exports_object_key", "object_key", unique=True),
        sa.Index("ix_exports_camera_id_created_at", "camera_id", "created_at"),
        sa.Index("ix_exports_created_at", "created_at"),  # the list over all cameras
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    start_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    end_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    object_key: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    size: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))


# The Core table, for the repository's statements.
EXPORTS: sa.Table = SQLModel.metadata.tables["exports"]
