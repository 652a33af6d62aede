"""The LLM agent's work queue: events to judge, leased by workers (re-exported by alert_repo).

A worker ``lease``s items for ``lease_s`` seconds, judges them, then ``complete``s them. An item
whose worker died is leased again once its lease expires (``attempts`` counts the leases).
Leasing is atomic across threads and processes: on PostgreSQL the candidates are selected
``FOR UPDATE SKIP LOCKED`` (concurrent workers take different items without waiting); on SQLite
the lease runs in a ``BEGIN IMMEDIATE`` transaction (the database's write lock) behind a
process-local lock. The claiming ``UPDATE`` repeats the claimability conditions, so an item can
never be held by two leases at once.

Completions are fenced: every lease writes a fresh token on the items it claims and returns it
with each item (``LeasedItem.token``). A worker that stalls past its lease and finishes late
brings the old token; by then another worker may hold the item under a new token, so the late
``complete`` matches no row and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from sentinel.store.agent_tables import AGENT_QUEUE, QUEUE_STATUSES
from sentinel.store.clock import Repository
from sentinel.store.sql import claim_leases, upsert_insert

__all__ = ["COMPLETE_STATUSES", "QUEUE_STATUSES", "AgentQueue", "LeasedItem"]

COMPLETE_STATUSES = frozenset({"done", "shed", "failed", "pending"})
"""Statuses ``complete`` accepts; "pending" hands an item back to be leased again."""

_MAX_LEASE = 1000


class LeasedItem(str):
    """A leased item: its event id (it *is* the id string) with the token of its lease.

    Being a ``str``, it reads and compares as the event id; pass ``token`` to
    ``AgentQueue.complete`` so that the completion only lands while this lease is the item's
    latest.
    """

    token: str

    def __new__(cls, event_id: str, token: str) -> LeasedItem:
        item = super().__new__(cls, event_id)
        item.token = token
        return item

    def __reduce__(self) -> tuple[type[LeasedItem], tuple[str, str]]:
        return (LeasedItem, (str(self), self.token))


class AgentQueue(Repository):
    """The queue of events waiting for the LLM agent.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def enqueue(self, event_id: str) -> bool:
        """Add an event as "pending"; returns False (and changes nothing) if it was queued."""
        stmt = upsert_insert(self._engine, AGENT_QUEUE).values(
            event_id=event_id,
            enqueued_at=self._now(),
            status="pending",
            attempts=0,
            leased_until=None,
            last_error=None,
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=[AGENT_QUEUE.c.event_id])
        with self._write() as conn:
            return conn.execute(stmt.returning(AGENT_QUEUE.c.event_id)).first() is not None

    def requeue(self, event_id: str) -> bool:
        """Queue a finished item ("done", "shed" or "failed") again, to be judged anew.

        An item still pending or leased is left alone (its judgement is still to come), and
        an event never queued is not added. A new judgement gets its own tries: ``attempts``
        starts again from zero, so earlier judgements never use up the retries of this one.

        Returns:
            Whether the item went back to "pending".
        """
        c = AGENT_QUEUE.c
        stmt = (
            sa.update(AGENT_QUEUE)
            .where(c.event_id == event_id, c.status.in_(("done", "shed", "failed")))
            .values(
                status="pending",
                enqueued_at=self._now(),
                attempts=0,
                leased_until=None,
                last_error=None,
            )
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def lease(self, limit: int, lease_s: float) -> list[LeasedItem]:
        """Claim up to ``limit`` items, oldest first: pending ones and ones whose lease expired.

        Each claimed item becomes "leased" until now + ``lease_s``, its ``attempts`` grows by
        one and it gets this lease's fresh token. No item is ever held by two unexpired leases.

        Args:
            limit: The most items to claim, 1 to 1000.
            lease_s: How long the claim lasts, in seconds (positive).

        Returns:
            The claimed items (event ids carrying their lease token), oldest first (possibly
            none).

        Raises:
            ValueError: If ``limit`` or ``lease_s`` is out of bounds.
        """
        if not 1 <= limit <= _MAX_LEASE:
            raise ValueError(f"limit must be between 1 and {_MAX_LEASE}, but got {limit}")
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, but got {lease_s}")
        c = AGENT_QUEUE.c
        with self._write() as conn:
            token, rows = claim_leases(
                conn,
                AGENT_QUEUE,
                c.event_id,
                (c.enqueued_at, c.event_id),
                limit=limit,
                lease_s=lease_s,
                now=self._now(),
            )
        return [LeasedItem(row.event_id, token) for row in rows]

    def complete(
        self, event_id: str, status: str, error: str | None = None, *, token: str | None = None
    ) -> bool:
        """Finish an item: "done", "shed" or "failed", or "pending" to hand it back.

        Args:
            event_id: The item.
            status: Its new status (see ``COMPLETE_STATUSES``); its lease ends.
            error: Why it failed, if it did (stored as ``last_error``).
            token: The token of the lease being finished (``LeasedItem.token``). With it, the
                item changes only while it is still "leased" under that token: after another
                lease (or a completion) of the item, nothing changes. Workers always pass it;
                None finishes the item whatever its lease (for operators and maintenance).

        Returns:
            Whether the item changed: False if it does not exist or, with ``token``, if its
            lease is no longer this one.

        Raises:
            ValueError: If ``status`` is not one of ``COMPLETE_STATUSES``.
        """
        if status not in COMPLETE_STATUSES:
            raise ValueError(
                f"status must be one of {sorted(COMPLETE_STATUSES)}, but got {status!r}"
            )
        c = AGENT_QUEUE.c
        stmt = (
            sa.update(AGENT_QUEUE)
            .where(c.event_id == event_id)
            .values(status=status, leased_until=None, last_error=error)
        )
        if token is not None:
            stmt = stmt.where(c.status == "leased", c.lease_token == token)
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def retry_later(self, event_id: str, delay_s: float, error: str, *, token: str) -> bool:
        """Hold a leased item back for ``delay_s`` seconds, then let it be leased again.

        For a transient failure (every backend timed out or was down): the item stays "leased"
        with no holder until the delay ends, which is exactly when a lease would expire, so no
        other state is needed; ``attempts`` counts the tries. Fenced by ``token`` like
        ``complete``.

        Returns:
            Whether the item changed (False if its lease is no longer this one).
        """
        if not delay_s >= 0:
            raise ValueError(f"delay_s must be >= 0, but got {delay_s}")
        c = AGENT_QUEUE.c
        stmt = (
            sa.update(AGENT_QUEUE)
            .where(c.event_id == event_id, c.status == "leased", c.lease_token == token)
            .values(
                leased_until=self._now() + timedelta(seconds=delay_s),
                lease_token=None,
                last_error=error,
            )
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def status(self, event_id: str) -> tuple[str, int] | None:
        """An item's ``(status, attempts)``, or None if it was never queued."""
        c = AGENT_QUEUE.c
        query = sa.select(c.status, c.attempts).where(c.event_id == event_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (str(row.status), int(row.attempts))

    def backlog(self) -> int:
        """How many items are pending or leased."""
        query = (
            sa.select(sa.func.count())
            .select_from(AGENT_QUEUE)
            .where(AGENT_QUEUE.c.status.in_(("pending", "leased")))
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def oldest_pending_age_s(self) -> float | None:
        """Seconds since the oldest pending item was queued, or None if none is pending."""
        c = AGENT_QUEUE.c
        query = (
            sa.select(c.enqueued_at).where(c.status == "pending").order_by(c.enqueued_at).limit(1)
        )
        with self._engine.connect() as conn:
            oldest: datetime | None = conn.execute(query).scalar_one_or_none()
        if oldest is None:
            return None
        return max(0.0, (self._now() - oldest).total_seconds())

    def shed_older_than(self, age_s: float) -> list[str]:
        """Mark the pending items queued more than ``age_s`` seconds ago "shed".

        Returns:
            The shed event ids, oldest first.
        """
        cutoff = self._now() - timedelta(seconds=age_s)
        c = AGENT_QUEUE.c
        stmt = (
            sa.update(AGENT_QUEUE)
            .where(c.status == "pending", c.enqueued_at < cutoff)
            .values(status="shed", leased_until=None)
            .returning(c.event_id, c.enqueued_at)
        )
        with self._write() as conn:
            rows = conn.execute(stmt).all()
        return [row.event_id for row in sorted(rows, key=lambda r: (r.enqueued_at, r.event_id))]
