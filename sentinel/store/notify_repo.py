"""The notifier's store: the outbox and the deliveries, over ``NotifyConfigRepository``
(subscriptions and templates, in ``notify_config_repo``; its names are re-exported here).

Outbox rows and deliveries are leased like the agent's queue (``agent_queue_repo``): a lease
writes a fresh token and a deadline on the rows it claims, and every later write about a row is
fenced by that token, so a relay that stalled past its lease changes nothing. Planning an outbox
row inserts its deliveries (``ON CONFLICT (key) DO NOTHING``: idempotent) and finishes the row
in one transaction, so a crash in between replans it without ever doubling a delivery.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sentinel.store.notify_config_repo import (
    NotifyConfigRepository,
    StoredSubscription,
    StoredTemplate,
    VersionConflict,
)
from sentinel.store.notify_tables import (
    NOTIFY_DELIVERIES,
    NOTIFY_OUTBOX,
)
from sentinel.store.sql import (
    check_page_size,
    claim_leases,
    decode_cursor,
    encode_cursor,
    upsert_insert,
)

__all__ = [
    "DeliveryRecord",
    "NotifyRepository",
    "OutboxItem",
    "StoredSubscription",
    "StoredTemplate",
    "VersionConflict",
]

_MAX_LEASE = 5000


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert_id: str
    kind: str
    before: str | None
    token: str


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    key: str
    alert_id: str
    camera_id: str
    subscription_id: str | None
    recipient: str
    channel: str
    target: str
    kind: str
    state: str
    attempts: int
    due_at: datetime
    requires_open: bool
    lease_token: str | None
    last_error: str | None
    provider_id: str | None
    digest_of: tuple[str, ...]
    before: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


def _delivery(row: Mapping[Any, Any]) -> DeliveryRecord:
    values = {k: row[k] for k in DeliveryRecord.__slots__}
    values["digest_of"] = tuple(json.loads(row["digest_of"] or "[]"))
    values["requires_open"] = bool(row["requires_open"])
    return DeliveryRecord(**values)


class NotifyRepository(NotifyConfigRepository):
    """The notifier's tables (see the module docstring)."""

    # -- outbox ------------------------------------------------------------------------------

    def lease_outbox(self, limit: int, lease_s: float) -> list[OutboxItem]:
        """Claim up to ``limit`` outbox rows, oldest first (pending, or their lease expired)."""
        if not 1 <= limit <= _MAX_LEASE or not lease_s > 0:
            raise ValueError("limit must be 1..5000 and lease_s positive")
        c = NOTIFY_OUTBOX.c
        with self._write() as conn:
            token, rows = claim_leases(
                conn,
                NOTIFY_OUTBOX,
                c.id,
                (c.id,),
                limit=limit,
                lease_s=lease_s,
                now=self._now(),
                returning=(c.alert_id, c.kind, c.before),
            )
        return [OutboxItem(r.id, r.alert_id, r.kind, r.before, token) for r in rows]

    def plan(self, item: OutboxItem, deliveries: list[dict[str, Any]]) -> int:
        """``plan_many`` of one outbox row."""
        return self.plan_many([(item, deliveries)])

    def plan_many(self, batch: list[tuple[OutboxItem, list[dict[str, Any]]]]) -> int:
        """Insert outbox rows' deliveries (idempotently) and finish the rows, atomically.

        Each delivery is a dict of ``notify_deliveries`` columns without the bookkeeping ones
        (id, state, attempts, timestamps: filled here; ``state`` may be given, e.g. "held").
        A row whose lease is no longer the item's is skipped with its deliveries. Deliveries
        are stamped one microsecond apart in batch order, so they are sent in that order.

        Returns:
            How many deliveries were new.
        """
        now = self._now()
        c = NOTIFY_OUTBOX.c
        new = 0
        tick = 0
        with self._write() as conn:
            for item, deliveries in batch:
                done = conn.execute(
                    sa.update(NOTIFY_OUTBOX)
                    .where(c.id == item.id, c.status == "leased", c.lease_token == item.token)
                    .values(status="done", leased_until=None)
                ).rowcount
                if done == 0:
                    continue
                for d in deliveries:
                    tick += 1
                    at = now + timedelta(microseconds=tick)
                    values = {
                        "id": str(uuid.uuid4()),
                        "state": "queued",
                        "attempts": 0,
                        "requires_open": False,
                        "digest_of": None,
                        "before": None,
                        "created_at": at,
                        "updated_at": at,
                        "due_at": now,
                        **d,
                    }
                    if isinstance(values["digest_of"], (list, tuple)):
                        values["digest_of"] = json.dumps(list(values["digest_of"]))
                    stmt = upsert_insert(self._engine, NOTIFY_DELIVERIES).values(**values)
                    stmt = stmt.on_conflict_do_nothing(index_elements=[NOTIFY_DELIVERIES.c.key])
                    inserted = conn.execute(stmt.returning(NOTIFY_DELIVERIES.c.id)).first()
                    new += inserted is not None
        return new

    def outbox_backlog(self) -> int:
        c = NOTIFY_OUTBOX.c
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(NOTIFY_OUTBOX).where(c.status != "done")
                ).scalar_one()
            )

    # -- deliveries --------------------------------------------------------------------------

    def insert_delivery(self, values: dict[str, Any]) -> DeliveryRecord:
        """Insert one delivery now (a test notification); returns it."""
        now = self._now()
        row = {
            "id": str(uuid.uuid4()),
            "state": "queued",
            "attempts": 0,
            "requires_open": False,
            "digest_of": None,
            "before": None,
            "created_at": now,
            "updated_at": now,
            "due_at": now,
            **values,
        }
        with self._write() as conn:
            conn.execute(NOTIFY_DELIVERIES.insert().values(**row))
        found = self.get_delivery(row["id"])
        assert found is not None
        return found

    def lease_one(self, delivery_id: str, lease_s: float = 60.0) -> str:
        """Lease one queued delivery now (a test send); returns the lease's token."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        token = uuid.uuid4().hex
        with self._write() as conn:
            conn.execute(
                sa.update(NOTIFY_DELIVERIES)
                .where(c.id == delivery_id, c.state == "queued")
                .values(
                    lease_token=token,
                    leased_until=now + timedelta(seconds=lease_s),
                    attempts=c.attempts + 1,
                    updated_at=now,
                )
            )
        return token

    def lease_deliveries(self, limit: int, lease_s: float) -> list[DeliveryRecord]:
        """Claim up to ``limit`` due queued deliveries, each with this lease's token, none
        with an earlier delivery of its (alert, recipient, channel) still pending."""
        if not 1 <= limit <= _MAX_LEASE or not lease_s > 0:
            raise ValueError("limit must be 1..5000 and lease_s positive")
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        # In order per (alert, recipient, channel): a message waits while an earlier one of
        # the same stream is queued (due later, retrying or leased) or held for a digest.
        earlier = NOTIFY_DELIVERIES.alias("earlier")
        e = earlier.c
        blocked = (
            sa.select(e.id)
            .where(
                e.alert_id == c.alert_id,
                e.recipient == c.recipient,
                e.channel == c.channel,
                e.state.in_(("queued", "held")),
                sa.or_(
                    e.created_at < c.created_at, sa.and_(e.created_at == c.created_at, e.id < c.id)
                ),
            )
            .exists()
        )
        claimable = sa.and_(
            c.state == "queued",
            c.due_at <= now,
            sa.or_(c.leased_until.is_(None), c.leased_until <= now),
            ~blocked,
        )
        query = self._skip_locked(
            sa.select(c.id).where(claimable).order_by(c.due_at, c.created_at, c.id).limit(limit)
        )
        token = uuid.uuid4().hex
        with self._write() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                sa.update(NOTIFY_DELIVERIES)
                .where(c.id.in_(ids), claimable)
                .values(
                    leased_until=now + timedelta(seconds=lease_s),
                    attempts=c.attempts + 1,
                    lease_token=token,
                    updated_at=now,
                )
            )
            rows = conn.execute(
                sa.select(NOTIFY_DELIVERIES).where(c.id.in_(ids), c.lease_token == token)
            ).mappings()
            return sorted((_delivery(r) for r in rows), key=lambda d: (d.created_at, d.id))

    def finish(
        self,
        delivery_id: str,
        token: str,
        state: str,
        *,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record a leased delivery's outcome (fenced by ``token``); its lease ends."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        values: dict[str, Any] = {
            "state": state,
            "leased_until": None,
            "updated_at": now,
            "last_error": error,
        }
        if provider_id is not None:
            values["provider_id"] = provider_id
        if state in ("sent", "delivered"):
            values["sent_at"] = now
        if state == "delivered":
            values["delivered_at"] = now
        stmt = (
            sa.update(NOTIFY_DELIVERIES)
            .where(c.id == delivery_id, c.state == "queued", c.lease_token == token)
            .values(**values)
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def finish_many(self, outcomes: list[tuple[str, str, str, str | None, str | None]]) -> int:
        """``finish`` of many deliveries in one transaction: (id, token, state, provider_id,
        error) each; returns how many changed."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        changed = 0
        with self._write() as conn:
            for delivery_id, token, state, provider_id, error in outcomes:
                values: dict[str, Any] = {
                    "state": state,
                    "leased_until": None,
                    "updated_at": now,
                    "last_error": error,
                }
                if provider_id is not None:
                    values["provider_id"] = provider_id
                if state in ("sent", "delivered"):
                    values["sent_at"] = now
                if state == "delivered":
                    values["delivered_at"] = now
                changed += conn.execute(
                    sa.update(NOTIFY_DELIVERIES)
                    .where(c.id == delivery_id, c.state == "queued", c.lease_token == token)
                    .values(**values)
                ).rowcount
        return changed

    def retry_later(self, delivery_id: str, token: str, delay_s: float, error: str) -> bool:
        """Put a leased delivery back in the queue, due in ``delay_s`` (fenced by ``token``)."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        stmt = (
            sa.update(NOTIFY_DELIVERIES)
            .where(c.id == delivery_id, c.state == "queued", c.lease_token == token)
            .values(
                due_at=now + timedelta(seconds=delay_s),
                leased_until=None,
                lease_token=None,
                last_error=error[:2000],
                updated_at=now,
            )
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def defer(self, delivery_id: str, token: str, delay_s: float) -> bool:
        """Put a leased delivery back without counting the attempt (rate limited)."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        stmt = (
            sa.update(NOTIFY_DELIVERIES)
            .where(c.id == delivery_id, c.state == "queued", c.lease_token == token)
            .values(
                due_at=now + timedelta(seconds=delay_s),
                leased_until=None,
                lease_token=None,
                attempts=sa.func.greatest(c.attempts - 1, 0)
                if self._engine.dialect.name == "postgresql"
                else sa.func.max(c.attempts - 1, 0),
            )
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def receipt(self, provider_id: str, state: str, error: str | None = None) -> bool:
        """A provider's status callback: a "sent" delivery becomes delivered/failed/bounced."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": error}
        if state == "delivered":
            values["delivered_at"] = now
        stmt = (
            sa.update(NOTIFY_DELIVERIES)
            .where(c.provider_id == provider_id, c.state == "sent")
            .values(**values)
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def last_sent_at(self, subscription_id: str, camera_id: str) -> datetime | None:
        """When this subscription last got a (non-held) message about this camera."""
        c = NOTIFY_DELIVERIES.c
        query = sa.select(sa.func.max(c.created_at)).where(
            c.subscription_id == subscription_id,
            c.camera_id == camera_id,
            c.state.not_in(("held", "digested", "cancelled")),
        )
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return value

    def due_digests(self) -> list[tuple[str, str, list[DeliveryRecord]]]:
        """Held deliveries whose cooldown is over, by (subscription, camera)."""
        c = NOTIFY_DELIVERIES.c
        now = self._now()
        due = (
            sa.select(c.subscription_id, c.camera_id)
            .where(c.state == "held", c.due_at <= now)
            .distinct()
        )
        out = []
        with self._engine.connect() as conn:
            for sub_id, camera_id in conn.execute(due).all():
                rows = conn.execute(
                    sa.select(NOTIFY_DELIVERIES)
                    .where(c.state == "held", c.subscription_id == sub_id, c.camera_id == camera_id)
                    .order_by(c.created_at, c.id)
                ).mappings()
                out.append((sub_id, camera_id, [_delivery(r) for r in rows]))
        return out

    def digest(self, held: list[DeliveryRecord], values: dict[str, Any]) -> bool:
        """Replace held deliveries by one digest delivery (``values``), atomically."""
        now = self._now()
        c = NOTIFY_DELIVERIES.c
        ids = [d.id for d in held]
        with self._write() as conn:
            moved = conn.execute(
                sa.update(NOTIFY_DELIVERIES)
                .where(c.id.in_(ids), c.state == "held")
                .values(state="digested", updated_at=now)
            ).rowcount
            if moved != len(ids):
                conn.rollback()
                return False
            row = {
                "id": str(uuid.uuid4()),
                "state": "queued",
                "attempts": 0,
                "requires_open": False,
                "before": None,
                "created_at": now,
                "updated_at": now,
                "due_at": now,
                **values,
                "digest_of": json.dumps([d.alert_id for d in held]),
            }
            stmt = upsert_insert(self._engine, NOTIFY_DELIVERIES).values(**row)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[c.key]))
        return True

    def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(NOTIFY_DELIVERIES).where(NOTIFY_DELIVERIES.c.id == delivery_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else _delivery(row)

    def list_deliveries(
        self,
        *,
        camera_ids: Collection[str] | None = None,
        alert_id: str | None = None,
        state: str | None = None,
        channel: str | None = None,
        recipient: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[builtins.list[DeliveryRecord], str | None]:
        """One page of deliveries, newest first; ``camera_ids`` is an access scope."""
        check_page_size(limit)
        c = NOTIFY_DELIVERIES.c
        query = sa.select(NOTIFY_DELIVERIES)
        if camera_ids is not None:
            query = query.where(c.camera_id.in_(sorted(set(camera_ids))))
        for column, value in (
            (c.alert_id, alert_id),
            (c.state, state),
            (c.channel, channel),
            (c.recipient, recipient),
        ):
            if value is not None:
                query = query.where(column == value)
        if cursor is not None:
            at, after = decode_cursor(cursor)
            query = query.where(
                sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.id < after))
            )
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [_delivery(r) for r in conn.execute(query).mappings()]
        items = rows[:limit]
        nxt = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return items, nxt

    def state_counts(self) -> dict[str, int]:
        c = NOTIFY_DELIVERIES.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(c.state, sa.func.count()).group_by(c.state)).all()
        return {str(s): int(n) for s, n in rows}
