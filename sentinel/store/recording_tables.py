"""Table model of the recordings (VMS): one row per MP4 segment stored in the object store.

Like ``sentinel.store.tables`` this is a storage row, created by the Alembic migration
``0004_recordings`` (keep both in step; a test compares them). The repository is
``sentinel.store.segment_repo``.

- ``segments``: a finished, probed segment of one camera, ``[start_at, end_at)`` on the wall
  clock, stored under ``object_key`` (unique: indexing the same object twice is a no-op).
  ``kind`` is ``"continuous"`` or ``"event"`` (a plain string checked by the repository, so a
  new kind needs no migration). ``exported`` marks segments kept for an exported clip: the
  retention sweep never deletes them.
- the tier (``0021_segment_tiers``): ``archived_at`` is set once a verified copy is in the
  archive store under ``archive_key`` (its sha256 in ``archive_sha256``); the local object is
  then gone, except for a restored copy, kept until ``restored_until``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["SEGMENTS", "SEGMENT_KINDS", "SegmentRow"]

SEGMENT_KINDS = frozenset({"continuous", "event"})


class SegmentRow(SQLModel, table=True):
    """One stored recording segment (an MP4 object) of one camera."""

    __tablename__ = "segments"
    __table_args__ = (
        sa.Index("ix_segments_object_key", "object_key", unique=True),
        # camera_id is indexed through both (their leading column).
        sa.Index("ix_segments_camera_id_start_at", "camera_id", "start_at"),
        sa.Index("ix_segments_camera_id_end_at", "camera_id", "end_at"),
        sa.Index("ix_segments_start_at", "start_at"),  # the retention sweep, all cameras
        sa.Index("ix_segments_restored_until", "restored_until"),  # the restores' expiry
    )

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    camera_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    start_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    end_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    duration_s: float = Field(sa_column=sa.Column(sa.Float(), nullable=False))
    size: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    codec: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    transcoded: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    object_key: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    exported: bool = Field(
        default=False,
        sa_column=sa.Column(sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    archived_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )
    archive_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(1024)))
    archive_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    restored_until: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )


# The Core table, for the repository's statements.
SEGMENTS: sa.Table = SQLModel.metadata.tables["segments"]
