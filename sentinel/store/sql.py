"""SQL helpers the repositories share: UTC checks, upserts, the SQLite write lock, cursors.

Each repository validates its arguments the same way and says what it expected and what it
got; the helpers here keep those messages (and the dialect-specific pieces) in one place.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import uuid
import weakref
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "MAX_PAGE_SIZE",
    "InvalidCursor",
    "as_utc",
    "check_choice",
    "check_page_size",
    "decode_cursor",
    "encode_cursor",
    "overlapping",
    "require_aware",
    "sqlite_lock",
    "upsert_insert",
    "utc_range",
]

MAX_PAGE_SIZE = 1000


class InvalidCursor(ValueError):  # noqa: N818 - a ValueError subclass named for what it rejects
    """Raised when a pagination cursor was not produced by a repository's ``list``."""


TimeRanges = Sequence[tuple[datetime, datetime | None]]
"""``(start, end)`` ranges; ``end`` None: open-ended."""


def overlapping(start: Any, end: Any, ranges: TimeRanges) -> Any:
    """A condition: the row's ``[start, end]`` shares time with one of ``ranges`` (bounds
    inclusive; a NULL ``end`` column is a row still going). False for no ranges.

    Args:
        start: The row's start column.
        end: The row's end column.
        ranges: The ranges (tz-aware).
    """
    clauses = []
    for r_start, r_end in ranges:
        clause = sa.or_(end.is_(None), end >= as_utc(r_start, "range start"))
        if r_end is not None:
            clause = sa.and_(clause, start <= as_utc(r_end, "range end"))
        clauses.append(clause)
    return sa.or_(*clauses) if clauses else sa.false()


def require_aware(value: datetime | None, name: str) -> None:
    """Checks that ``value`` (if not None) is timezone-aware.

    Raises:
        ValueError: If ``value`` is naive (``name`` is in the message).
    """
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime, but got {value.isoformat()}")


def as_utc(value: datetime, name: str) -> datetime:
    """``value`` converted to UTC.

    Raises:
        ValueError: If ``value`` is naive (``name`` is in the message).
    """
    require_aware(value, name)
    return value.astimezone(UTC)


def utc_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` in UTC.

    Raises:
        ValueError: If either is naive or ``end`` is before ``start``.
    """
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    return start, end


def check_choice(value: str, allowed: Collection[str], name: str) -> None:
    """Raises ValueError (naming ``name`` and the choices) unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, but got {value!r}")


def check_page_size(limit: int) -> None:
    """Raises ValueError unless ``limit`` is between 1 and ``MAX_PAGE_SIZE``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, but got {limit}")


def encode_cursor(at: datetime, row_id: str) -> str:
    """An opaque keyset cursor for the row after ``(at, row_id)`` in newest-first order."""
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(at, row_id)`` of a cursor made by ``encode_cursor``.

    Raises:
        InvalidCursor: If ``cursor`` is malformed.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        stamp, sep, row_id = raw.partition("|")
        at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursor(f"malformed cursor {cursor!r}") from exc
    if not sep or not row_id or at.tzinfo is None:
        raise InvalidCursor(f"malformed cursor {cursor!r}")
    return at, row_id


def upsert_insert(engine: Engine, table: sa.Table) -> Any:
    """The dialect's INSERT construct that supports ``on_conflict_do_update``.

    Raises:
        ValueError: If the engine is neither PostgreSQL nor SQLite.
    """
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")


# SQLite serialises writers anyway; a process-local lock per engine makes threads queue here
# instead of spinning in SQLite's busy handler (and keeps an in-memory database, whose threads
# share one connection, from nesting BEGINs).
_sqlite_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_sqlite_locks_guard = threading.Lock()


def sqlite_lock(engine: Engine) -> threading.Lock:
    """The process-wide write lock of a SQLite ``engine`` (one per engine)."""
    with _sqlite_locks_guard:
        lock = _sqlite_locks.get(engine)
        if lock is None:
            lock = _sqlite_locks[engine] = threading.Lock()
        return lock


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the write lock on SQLite, taken up front (no
    read-to-write upgrade deadlock between threads); commits on exit, rolls back on error."""
    is_sqlite = engine.dialect.name == "sqlite"
    with contextlib.ExitStack() as stack:
        if is_sqlite:
            stack.enter_context(sqlite_lock(engine))
        conn = stack.enter_context(engine.connect())
        try:
            if is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()
        except BaseException:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.rollback()
            raise


def claim_leases(
    conn: Connection,
    table: sa.Table,
    key: sa.ColumnElement[Any],
    order_by: Sequence[sa.ColumnElement[Any]],
    *,
    limit: int,
    lease_s: float,
    now: datetime,
    returning: Sequence[sa.ColumnElement[Any]] = (),
) -> tuple[str, list[sa.Row[Any]]]:
    """Claim up to ``limit`` rows of a leased queue, in ``order_by`` order.

    The table has ``status``, ``leased_until``, ``attempts`` and ``lease_token`` columns; a row
    is claimable while "pending" or once its lease expired. Claimed rows become "leased" until
    ``now + lease_s``, count one more attempt and carry this call's fresh token, with which a
    later write is fenced. Run it inside :func:`write_transaction`: on PostgreSQL the rows are
    locked with ``SKIP LOCKED``, on SQLite the transaction holds the write lock.

    Returns:
        The token and the claimed rows (``key`` then ``returning``), in ``order_by`` order.
    """
    c = table.c
    claimable = sa.or_(c.status == "pending", sa.and_(c.status == "leased", c.leased_until <= now))
    query = sa.select(key).where(claimable).order_by(*order_by).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    # One token per call is enough to fence: any later lease of a row writes another.
    token = uuid.uuid4().hex
    ids = list(conn.execute(query).scalars())
    if not ids:
        return token, []
    rows = conn.execute(
        sa.update(table)
        .where(key.in_(ids), claimable)
        .values(
            status="leased",
            leased_until=now + timedelta(seconds=lease_s),
            attempts=c.attempts + 1,
            lease_token=token,
        )
        .returning(key, *returning)
    ).all()
    position = {item: n for n, item in enumerate(ids)}
    return token, sorted(rows, key=lambda row: position[row[0]])


def count_held(
    engine: sa.Engine, table: sa.Table, camera_id: str, ended_before: datetime, keep: TimeRanges
) -> int:
    """How many of ``table``'s rows of the camera (events, incidents) that ended before
    ``ended_before`` share time with ``keep`` (what an expiry keeps because of legal holds)."""
    require_aware(ended_before, "ended_before")
    if not keep:
        return 0
    c = table.c
    query = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(c.camera_id == camera_id, c.ended_at.is_not(None), c.ended_at < ended_before)
        .where(overlapping(c.started_at, c.ended_at, keep))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
