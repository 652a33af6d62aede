"""Tables of the notifier (migration ``0014_notify``).

- ``notify_outbox``: one row per alert change to notify about (kind new/update/end), written in
  the same transaction as the change (``alert_repo``); the relay leases, plans and finishes it.
- ``notify_deliveries``: one row per (alert, recipient, channel, kind), unique on its
  idempotency ``key``, with its state, attempts, due time, lease and provider receipt.
- ``notify_subscriptions``: subscriptions (JSON ``body``), soft-deleted.
- ``notify_templates`` / ``notify_template_versions``: templates, every version kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from sentinel.store.tables import UTCDateTime

__all__ = [
    "NOTIFY_DELIVERIES",
    "NOTIFY_OUTBOX",
    "NOTIFY_SUBSCRIPTIONS",
    "NOTIFY_TEMPLATES",
    "NOTIFY_TEMPLATE_VERSIONS",
]

_md = SQLModel.metadata

NOTIFY_OUTBOX = sa.Table(
    "notify_outbox",
    _md,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("before", sa.Text(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("leased_until", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_notify_outbox_status_id", "status", "id"),
)

NOTIFY_DELIVERIES = sa.Table(
    "notify_deliveries",
    _md,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("camera_id", sa.String(64), nullable=False),
    sa.Column("subscription_id", sa.String(64), nullable=True),
    sa.Column("recipient", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("requires_open", sa.Boolean(), nullable=False),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("leased_until", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("provider_id", sa.String(255), nullable=True),
    sa.Column("digest_of", sa.Text(), nullable=True),
    sa.Column("before", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Index("ix_notify_deliveries_state_due_at", "state", "due_at"),
    sa.Index("ix_notify_deliveries_alert_id", "alert_id"),
    sa.Index("ix_notify_deliveries_sub_camera", "subscription_id", "camera_id", "created_at"),
    sa.Index("ix_notify_deliveries_provider_id", "provider_id"),
)

NOTIFY_SUBSCRIPTIONS = sa.Table(
    "notify_subscriptions",
    _md,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)

NOTIFY_TEMPLATES = sa.Table(
    "notify_templates",
    _md,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(16), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)

NOTIFY_TEMPLATE_VERSIONS = sa.Table(
    "notify_template_versions",
    _md,
    sa.Column("template_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("changed_by", sa.String(255), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)
