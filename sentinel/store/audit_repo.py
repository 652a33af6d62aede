"""Repository of the audit log: an append-only hash chain (re-exported by ``security_repo``).

Each entry's ``hash`` is ``sentinel.gateway.audit.chain_hash`` of the previous entry's hash and
the entry itself, and ``seq`` is the previous ``seq`` plus one. Appends are serialised by
locking the single ``audit_head`` row in the appending transaction (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite the transaction starts with ``BEGIN IMMEDIATE``, which takes the
database's write lock), so concurrent appends from threads and processes never fork the chain or
leave a gap. The head also records the last ``seq`` and ``hash``, so deleting the newest entries
is detectable: compare ``head()`` with the last entry of ``iter_all()``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sentinel.gateway.audit import AuditRecord, chain_hash
from sentinel.store.clock import Repository
from sentinel.store.security_tables import AUDIT_HEAD, AUDIT_LOG
from sentinel.store.sql import as_utc, check_page_size, sqlite_lock

__all__ = ["AuditRepository"]

_HEAD_ID = 1


def _load_detail(raw: str) -> dict[str, Any]:
    # A row edited into invalid JSON must fail verification at its seq, not crash the reader:
    # wrapping the raw text keeps it visible and can never reproduce the stored hash.
    try:
        detail = json.loads(raw)
    except ValueError:
        detail = None
    return detail if isinstance(detail, dict) else {"__unparsable__": raw}


def _to_record(row: Mapping[Any, Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(row["seq"]),
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        client=row["client"],
        outcome=row["outcome"],
        detail=_load_detail(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class AuditRepository(Repository):
    """Appends to and reads the hash-chained audit log.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (the default ``at``); injectable for tests.
    """

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        client: str,
        outcome: str,
        detail: Mapping[str, Any],
        at: datetime | None = None,
    ) -> AuditRecord:
        """Append an entry as the chain's next link, in one transaction.

        Args:
            actor: Who acted (at most 255 characters).
            action: What was done (at most 64 characters).
            target: What it was done to.
            client: Where the request came from.
            outcome: How it ended (at most 32 characters).
            detail: JSON-serialisable details; stored and hashed as their JSON round trip.
            at: When it happened (tz-aware, stored as UTC); now if None.

        Returns:
            The stored entry, with its ``seq``, ``prev_hash`` and ``hash``.

        Raises:
            ValueError: If ``at`` is naive, ``detail`` is not JSON-serialisable (or holds NaN
                or infinity), or ``actor``/``action``/``outcome`` is empty or too long.
            RuntimeError: If the ``audit_head`` row is missing (database not migrated).
        """
        for name, value, maximum in (
            ("actor", actor, 255),
            ("action", action, 64),
            ("outcome", outcome, 32),
        ):
            if not 1 <= len(value) <= maximum:
                raise ValueError(f"{name} must have 1 to {maximum} characters, got {value!r}")
        when = as_utc(self._clock() if at is None else at, "at")
        try:
            detail_json = json.dumps(dict(detail), sort_keys=True, allow_nan=False)
        except TypeError as exc:
            raise ValueError(f"detail is not JSON-serialisable: {exc}") from exc
        # Hash what a reader will get back, so verification never depends on Python types
        # (tuples, subclasses) that do not survive the trip through JSON.
        entry: dict[str, Any] = {
            "at": when,
            "actor": actor,
            "action": action,
            "target": target,
            "client": client,
            "outcome": outcome,
        }
        stored_detail = json.loads(detail_json)
        if self._engine.dialect.name == "sqlite":
            with sqlite_lock(self._engine):
                return self._append(entry, detail_json, stored_detail)
        return self._append(entry, detail_json, stored_detail)

    def _append(
        self, entry: dict[str, Any], detail_json: str, detail: dict[str, Any]
    ) -> AuditRecord:
        with self._engine.connect() as conn:
            try:
                seq, prev_hash = self._lock_head(conn)
                seq += 1
                digest = chain_hash(prev_hash, seq=seq, detail=detail, **entry)
                values = {**entry, "seq": seq, "detail": detail_json}
                conn.execute(
                    sa.insert(AUDIT_LOG).values(**values, prev_hash=prev_hash, hash=digest)
                )
                moved = conn.execute(
                    sa.update(AUDIT_HEAD)
                    .where(AUDIT_HEAD.c.id == _HEAD_ID, AUDIT_HEAD.c.seq == seq - 1)
                    .values(seq=seq, hash=digest)
                )
                if moved.rowcount != 1:  # cannot happen while the head row is locked
                    raise RuntimeError("audit_head changed during an append")
                conn.commit()
            except BaseException:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    conn.rollback()
                raise
        return AuditRecord(seq=seq, detail=detail, prev_hash=prev_hash, hash=digest, **entry)

    @staticmethod
    def _lock_head(conn: Connection) -> tuple[int, str]:
        query = sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == _HEAD_ID)
        if conn.dialect.name == "sqlite":
            # pysqlite would begin a deferred transaction only at the INSERT, after the read:
            # take the write lock before reading the head (waits up to busy_timeout).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise RuntimeError("the audit_head row is missing: run sentinel.store.db.migrate")
        return int(row.seq), str(row.hash)

    def head(self) -> tuple[int, str]:
        """The last entry's ``(seq, hash)``; ``(0, GENESIS_HASH)`` for an empty log."""
        query = sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == _HEAD_ID)
        with self._engine.connect() as conn:
            row = conn.execute(query).one()
        return int(row.seq), str(row.hash)

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: int | None = None,
        limit: int = 100,
    ) -> tuple[builtins.list[AuditRecord], int | None]:
        """One page of entries, newest first (by ``seq`` descending).

        Args:
            actor: Only this actor's entries.
            action: Only entries of this action.
            outcome: Only entries with this outcome.
            since: Only entries at or after this time (tz-aware).
            until: Only entries at or before this time (tz-aware).
            cursor: The next cursor of the previous page: continue with older entries.
            limit: Page size, 1 to ``MAX_PAGE_SIZE``.

        Returns:
            The entries and the cursor of the next page (None on the last page).

        Raises:
            ValueError: If ``limit`` is out of bounds or a datetime is naive.
        """
        check_page_size(limit)
        c = AUDIT_LOG.c
        query = sa.select(AUDIT_LOG)
        for column, value in ((c.actor, actor), (c.action, action), (c.outcome, outcome)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(c.at >= as_utc(since, "since"))
        if until is not None:
            query = query.where(c.at <= as_utc(until, "until"))
        if cursor is not None:
            query = query.where(c.seq < cursor)
        query = query.order_by(c.seq.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        items = [_to_record(row) for row in rows[:limit]]
        return items, (items[-1].seq if len(rows) > limit else None)

    def iter_all(self, batch: int = 1000, *, after: int | None = None) -> Iterator[AuditRecord]:
        """Every entry, oldest first (for verification), read ``batch`` rows per query.

        No connection is held between batches, so the caller may stop at any time.

        Args:
            batch: Rows read per query.
            after: Only the entries after this ``seq`` (the window past an anchor).

        Raises:
            ValueError: If ``batch`` is not positive.
        """
        if batch < 1:
            raise ValueError(f"batch must be positive, but got {batch}")
        while True:
            query = sa.select(AUDIT_LOG).order_by(AUDIT_LOG.c.seq).limit(batch)
            if after is not None:
                query = query.where(AUDIT_LOG.c.seq > after)
            with self._engine.connect() as conn:
                records = [_to_record(row) for row in conn.execute(query).mappings()]
            yield from records
            if len(records) < batch:
                return
            after = records[-1].seq
