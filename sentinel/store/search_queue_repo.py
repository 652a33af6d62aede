"""The search indexing queue: items leased by the indexer, completed under their lease token.

Same leasing rules as the agent's queue (:mod:`sentinel.store.agent_queue_repo`): claims are
atomic (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), an expired
lease is claimable again, and a completion lands only while its lease is the item's latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.search_tables import SEARCH_QUEUE, enqueue_in
from sentinel.store.sql import claim_leases

__all__ = ["SearchLease", "SearchQueue"]

_MAX_LEASE = 1000


@dataclass(frozen=True, slots=True)
class SearchLease:
    """One leased item: what to do with which item, under which lease token."""

    item_id: str
    kind: str
    op: str
    token: str


class SearchQueue(Repository):
    """The queue of events and incidents to (re)index or remove from the index."""

    def enqueue(self, item_id: str, kind: str = "event", op: str = "upsert") -> None:
        """Queue an item (again): see :func:`sentinel.store.search_tables.enqueue_in`."""
        with self._write() as conn:
            enqueue_in(conn, item_id, kind, op, self._now())

    def lease(self, limit: int, lease_s: float) -> list[SearchLease]:
        """Claim up to ``limit`` pending or expired items, oldest first.

        Raises:
            ValueError: If ``limit`` is not 1..1000 or ``lease_s`` is not positive.
        """
        if not 1 <= limit <= _MAX_LEASE:
            raise ValueError(f"limit must be between 1 and {_MAX_LEASE}, but got {limit}")
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, but got {lease_s}")
        c = SEARCH_QUEUE.c
        with self._write() as conn:
            token, rows = claim_leases(
                conn,
                SEARCH_QUEUE,
                c.item_id,
                (c.enqueued_at, c.item_id),
                limit=limit,
                lease_s=lease_s,
                now=self._now(),
                returning=(c.kind, c.op),
            )
        return [SearchLease(r.item_id, r.kind, r.op, token) for r in rows]

    def complete(
        self, lease: SearchLease, error: str | None = None, *, failed: bool = False
    ) -> bool:
        """Finish a leased item: "done", or "failed" with ``failed``; "pending" again (to be
        retried once the lease would have expired) when only ``error`` is given.

        Returns:
            Whether the item changed (False once another lease or a new enqueue took it).
        """
        c = SEARCH_QUEUE.c
        values: dict[str, object]
        if failed:
            values = {"status": "failed", "leased_until": None, "last_error": error}
        elif error is not None:
            values = {"lease_token": None, "last_error": error}  # stays leased until expiry
        else:
            values = {"status": "done", "leased_until": None, "last_error": None}
        stmt = (
            sa.update(SEARCH_QUEUE)
            .where(c.item_id == lease.item_id, c.status == "leased", c.lease_token == lease.token)
            .values(**values)
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def status(self, item_id: str) -> tuple[str, str, int] | None:
        """An item's ``(status, op, attempts)``, or None if it was never queued."""
        c = SEARCH_QUEUE.c
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(c.status, c.op, c.attempts).where(c.item_id == item_id)
            ).first()
        return None if row is None else (str(row.status), str(row.op), int(row.attempts))

    def backlog(self) -> int:
        """How many items are pending or leased (the index's lag, in items)."""
        query = (
            sa.select(sa.func.count())
            .select_from(SEARCH_QUEUE)
            .where(SEARCH_QUEUE.c.status.in_(("pending", "leased")))
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def oldest_pending_age_s(self) -> float | None:
        """Seconds since the oldest pending item was queued, or None if none is pending."""
        c = SEARCH_QUEUE.c
        query = (
            sa.select(c.enqueued_at)
            .where(c.status.in_(("pending", "leased")))
            .order_by(c.enqueued_at)
            .limit(1)
        )
        with self._engine.connect() as conn:
            oldest: datetime | None = conn.execute(query).scalar_one_or_none()
        if oldest is None:
            return None
        return max(0.0, (self._now() - oldest).total_seconds())
