"""Table model of the data-subject requests (issue 16): GDPR access and erasure.

Created by the Alembic migration ``0022_privacy_requests`` (keep both in step; a test compares
them). The repository is ``sentinel.store.subject_repo``; the planning is
``sentinel.retention.subjects`` and the execution ``sentinel.retention.requests``.

- ``privacy_requests``: one request. ``kind`` is ``access`` or ``erasure``; ``subject`` the
  subject as given (JSON; a face photo is never stored: only the events it matched);
  ``plan`` what the subject resolved to (JSON, written once, so a resumed request works on
  the same items even after some are gone); ``steps`` one entry per store with its status
  (pending, done, held, failed), counts, ids, held items and errors (JSON); ``status``
  pending, running, done, partial (finished, but held items were kept) or failed.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["PRIVACY_REQUESTS", "PrivacyRequestRow"]


class PrivacyRequestRow(SQLModel, table=True):
    """One data-subject request."""

    __tablename__ = "privacy_requests"
    __table_args__ = (sa.Index("ix_privacy_requests_created_at", "created_at"),)

    id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    subject: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    cameras: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    plan: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    steps: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    report: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    archive_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(1024)))
    requested_by: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


# The Core table, for the repository's statements.
PRIVACY_REQUESTS: sa.Table = SQLModel.metadata.tables["privacy_requests"]
