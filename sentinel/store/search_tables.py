"""The search indexing queue: events and incidents whose index entry must be (re)written or
removed, leased by the indexer like the agent's queue (``sentinel.store.search_queue_repo``).

Created by the migration ``0013_search_queue``; keep both in step (a test compares them). Rows
are written in the same transaction as the event or incident change they follow
(:func:`enqueue_in`), so an event that was stored is never missing from the queue.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from sentinel.store.sql import upsert_insert
from sentinel.store.tables import UTCDateTime

__all__ = [
    "SEARCH_KINDS",
    "SEARCH_OPS",
    "SEARCH_QUEUE",
    "SearchQueueRow",
    "enqueue_in",
]

SEARCH_KINDS = frozenset({"event", "incident"})
SEARCH_OPS = frozenset({"upsert", "delete"})


class SearchQueueRow(SQLModel, table=True):
    """One item to (re)index or to remove from the index.

    ``status`` is "pending", "leased", "done" or "failed"; ``op`` "upsert" or "delete";
    ``lease_token`` fences completions like the agent queue's.
    """

    __tablename__ = "search_queue"
    __table_args__ = (sa.Index("ix_search_queue_status_enqueued_at", "status", "enqueued_at"),)

    item_id: str = Field(sa_column=sa.Column(sa.String(36), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    op: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    enqueued_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    attempts: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    leased_until: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    lease_token: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text()))


SEARCH_QUEUE: sa.Table = SQLModel.metadata.tables["search_queue"]


def enqueue_in(conn: Connection, item_id: str, kind: str, op: str, now: datetime) -> None:
    """Queue ``item_id`` on an open connection, inside the caller's transaction.

    An item already queued goes back to "pending" with the new ``op`` and fresh tries; a lease
    held on it loses its token, so a worker indexing an older state cannot mark the new one
    done (it is indexed again).

    Raises:
        ValueError: For an unknown ``kind`` or ``op``.
    """
    if kind not in SEARCH_KINDS:
        raise ValueError(f"kind must be one of {sorted(SEARCH_KINDS)}, but got {kind!r}")
    if op not in SEARCH_OPS:
        raise ValueError(f"op must be one of {sorted(SEARCH_OPS)}, but got {op!r}")
    stmt = upsert_insert(conn.engine, SEARCH_QUEUE).values(
        item_id=item_id,
        kind=kind,
        op=op,
        enqueued_at=now,
        status="pending",
        attempts=0,
        leased_until=None,
        lease_token=None,
        last_error=None,
    )
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[SEARCH_QUEUE.c.item_id],
        set_={
            "kind": new.kind,
            "op": new.op,
            "enqueued_at": new.enqueued_at,
            "status": new.status,
            "attempts": new.attempts,
            "leased_until": new.leased_until,
            "lease_token": new.lease_token,
            "last_error": new.last_error,
        },
    )
    conn.execute(stmt)
