"""Table of the browsers' Web Push subscriptions (issue 17).

Created by the Alembic migration ``0023_push_subscriptions`` (keep both in step; a test
compares them). The repository is ``sentinel.store.push_repo``; the encryption and VAPID are
``sentinel.notify.webpush``.

- ``push_subscriptions``: one browser's ``PushSubscription`` of one user: its endpoint (unique:
  a browser that subscribes again, or for another user, replaces the row), its ``p256dh`` and
  ``auth`` keys (base64url), and how its pushes fared (``failures`` in a row, ``last_error``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = ["ENDPOINT_MAX", "PUSH_SUBSCRIPTIONS"]

ENDPOINT_MAX = 2048

PUSH_SUBSCRIPTIONS = sa.Table(
    "push_subscriptions",
    SQLModel.metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("endpoint", sa.String(ENDPOINT_MAX), nullable=False, unique=True),
    sa.Column("p256dh", sa.String(100), nullable=False),
    sa.Column("auth", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_sent_at", UTCDateTime(), nullable=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Index("ix_push_subscriptions_user_id", "user_id"),
)
