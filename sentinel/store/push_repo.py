"""Repository of the browsers' Web Push subscriptions (``push_subscriptions``).

A subscription is unique by endpoint: saving one whose endpoint is known replaces its keys and
owner (the browser subscribed again, maybe for another user), so a browser never gets one
alert twice. The owner sees, and deletes, only their own.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.push_tables import PUSH_SUBSCRIPTIONS
from sentinel.store.sql import upsert_insert

__all__ = ["PushRepository", "PushSubscriptionRecord", "TooMany"]

_MAX_ERROR = 2000


class TooMany(ValueError):  # noqa: N818 - a ValueError named for what it refuses
    """The user already has the most subscriptions allowed."""


@dataclass(frozen=True, slots=True)
class PushSubscriptionRecord:
    id: str
    user_id: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None
    failures: int
    last_error: str | None


def _record(row: sa.RowMapping) -> PushSubscriptionRecord:
    return PushSubscriptionRecord(**{k: row[k] for k in PushSubscriptionRecord.__slots__})


class PushRepository(Repository):
    """Stores Web Push subscriptions (see the module docstring)."""

    def save(
        self, user_id: str, endpoint: str, p256dh: str, auth: str, *, max_per_user: int = 32
    ) -> tuple[PushSubscriptionRecord, bool]:
        """Saves a browser's subscription for ``user_id``, idempotently by endpoint.

        Returns:
            The stored subscription and whether it is new (its id stays when it was known).

        Raises:
            TooMany: ``user_id`` has ``max_per_user`` other subscriptions already.
        """
        c = PUSH_SUBSCRIPTIONS.c
        now = self._now()
        with self._write() as conn:
            known = conn.execute(sa.select(c.id).where(c.endpoint == endpoint)).scalar_one_or_none()
            if known is None:
                count = conn.execute(
                    sa.select(sa.func.count()).where(c.user_id == user_id)
                ).scalar_one()
                if count >= max_per_user:
                    raise TooMany(f"at most {max_per_user} push subscriptions per user")
            values = {
                "id": str(uuid.uuid4()),
                "user_id": user_id,
                "endpoint": endpoint,
                "p256dh": p256dh,
                "auth": auth,
                "created_at": now,
                "updated_at": now,
                "failures": 0,
                "last_error": None,
            }
            stmt = upsert_insert(self._engine, PUSH_SUBSCRIPTIONS).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.endpoint],
                set_={
                    "user_id": user_id,
                    "p256dh": p256dh,
                    "auth": auth,
                    "updated_at": now,
                    "failures": 0,
                    "last_error": None,
                },
            )
            conn.execute(stmt)
            row = (
                conn.execute(sa.select(PUSH_SUBSCRIPTIONS).where(c.endpoint == endpoint))
                .mappings()
                .one()
            )
        return _record(row), known is None

    def get(self, sub_id: str) -> PushSubscriptionRecord | None:
        c = PUSH_SUBSCRIPTIONS.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(PUSH_SUBSCRIPTIONS).where(c.id == sub_id)).mappings().first()
            )
        return None if row is None else _record(row)

    def list(self, user_id: str | None = None) -> builtins.list[PushSubscriptionRecord]:
        """The subscriptions of ``user_id`` (None: everyone's), oldest first."""
        c = PUSH_SUBSCRIPTIONS.c
        query = sa.select(PUSH_SUBSCRIPTIONS).order_by(c.created_at, c.id)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def delete(self, sub_id: str, user_id: str | None = None) -> bool:
        """Deletes a subscription (only ``user_id``'s, when given); whether one was."""
        c = PUSH_SUBSCRIPTIONS.c
        where = c.id == sub_id
        if user_id is not None:
            where = sa.and_(where, c.user_id == user_id)
        with self._write() as conn:
            return bool(conn.execute(sa.delete(PUSH_SUBSCRIPTIONS).where(where)).rowcount)

    def delete_user(self, user_id: str) -> int:
        c = PUSH_SUBSCRIPTIONS.c
        with self._write() as conn:
            return int(
                conn.execute(sa.delete(PUSH_SUBSCRIPTIONS).where(c.user_id == user_id)).rowcount
            )

    def record(self, sub_id: str, error: str | None) -> None:
        """Records a push's outcome: a success clears the failures, a failure counts one."""
        c = PUSH_SUBSCRIPTIONS.c
        now = self._now()
        values: dict[str, object]
        if error is None:
            values = {"last_sent_at": now, "failures": 0, "last_error": None}
        else:
            values = {"failures": c.failures + 1, "last_error": error[:_MAX_ERROR]}
        with self._write() as conn:
            conn.execute(sa.update(PUSH_SUBSCRIPTIONS).where(c.id == sub_id).values(**values))
