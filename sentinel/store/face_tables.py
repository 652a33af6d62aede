"""Table models of face prints (issue 16): sealed face embeddings, never crops or vectors.

Created by the Alembic migration ``0020_face_prints`` (keep both in step; a test compares
them). The repository is ``sentinel.store.face_repo``; sealing and buckets are
``sentinel.retention.faces``.

- ``face_prints``: one face seen on an event's snapshot: its keyed ``bucket`` (HMAC of a
  hyperplane code), the AES-256-GCM ``nonce`` and ``sealed`` embedding, and the
  ``key_version`` that sealed it. No plain vector, no image. A print goes with its event
  (``ON DELETE CASCADE``): when the retention sweep deletes an event, its faces go too.
- ``face_scans``: which events were scanned for faces (and how many were found), so each
  snapshot is scanned once; goes with its event as well.

Beware: SQLite runs with ``PRAGMA foreign_keys=ON``, so a future migration that rebuilds
``events`` (``batch_alter_table("events")``: copy, drop, rename) would cascade and delete every
face print; turn foreign keys off around such a rebuild.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["FACE_PRINTS", "FACE_SCANS", "FacePrintRow", "FaceScanRow"]


class FacePrintRow(SQLModel, table=True):
    """One sealed face embedding of an event."""

    __tablename__ = "face_prints"
    __table_args__ = (
        sa.Index("ix_face_prints_bucket", "bucket"),
        sa.Index("ix_face_prints_event_id", "event_id"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    event_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("events.id", ondelete="CASCADE", name="fk_face_prints_event_id"),
            nullable=False,
        )
    )
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    bucket: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    nonce: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    sealed: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    key_version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class FaceScanRow(SQLModel, table=True):
    """An event whose snapshot was scanned for faces."""

    __tablename__ = "face_scans"

    event_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("events.id", ondelete="CASCADE", name="fk_face_scans_event_id"),
            primary_key=True,
        )
    )
    scanned_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    faces: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))


# The Core tables, for the repository's statements.
FACE_PRINTS: sa.Table = SQLModel.metadata.tables["face_prints"]
FACE_SCANS: sa.Table = SQLModel.metadata.tables["face_scans"]
