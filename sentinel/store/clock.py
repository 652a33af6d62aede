"""The repositories' clock (tz-aware UTC now, injectable for tests) and their base class."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from sqlalchemy.engine import Connection, Engine

from sentinel.store.sql import as_utc, write_transaction

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Repository:
    """What every repository holds: its engine and its clock.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        self._engine = engine
        self._clock = clock

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (see :func:`sentinel.store.sql.write_transaction`)."""
        with write_transaction(self._engine) as conn:
            yield conn

    def _now(self) -> datetime:
        """The clock's time, checked tz-aware and in UTC."""
        return as_utc(self._clock(), "clock()")
