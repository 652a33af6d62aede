"""Engines and schema migrations for the store: SQLite (embedded default) or PostgreSQL.

PostgreSQL URLs may carry libpq options in the query string, which psycopg receives as connection
parameters. To confine Sentinel to one schema (tests do this, one schema per test), set its
``search_path``::

    postgresql+psycopg://user@host:5432/db?options=-csearch_path%3Dmy_schema

The tables, indexes and ``alembic_version`` are then created in and read from ``my_schema``
(which must exist).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

__all__ = ["MIGRATIONS_DIR", "alembic_config", "make_engine", "migrate", "ping", "sqlite_url"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Key of the PostgreSQL advisory lock that serialises concurrent migrate() calls ("SENTMIGR").
_PG_MIGRATION_LOCK = 0x53454E544D494752
_DIALECTS = ("sqlite", "postgresql")


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite database file at ``path`` (made absolute)."""
    return f"sqlite:///{Path(path).expanduser().resolve().as_posix()}"


def _is_sqlite_memory(database: str | None) -> bool:
    return not database or database == ":memory:" or "mode=memory" in database


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL takes a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers never block the writer, which is what many camera actors plus the API
        # reading the same file need. NORMAL is durable across application crashes in WAL mode
        # (a power loss may drop the last commits, never corrupt the file).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL, tuned for Sentinel.

    SQLite: the parent folder of the file is created, and every connection gets WAL journaling,
    ``busy_timeout`` 10 000 ms and ``synchronous=NORMAL``; ``sqlite://`` (in memory) shares one
    connection between threads. PostgreSQL: ``pool_pre_ping`` so connections dropped by a server
    restart are replaced instead of failing a request; libpq ``options`` in the URL (such as
    ``-csearch_path=...``, see the module docstring) are passed through.

    Args:
        url: A SQLAlchemy URL, ``sqlite:///...`` or ``postgresql+psycopg://...``.
        **kwargs: Extra ``sqlalchemy.create_engine`` arguments (override the defaults).

    Returns:
        The engine.

    Raises:
        ValueError: If the URL is malformed or names another database.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"invalid database URL {url!r}: {exc}") from exc
    dialect = parsed.get_backend_name()
    if dialect not in _DIALECTS:
        raise ValueError(f"database URL must be sqlite or postgresql, but got {dialect!r}")

    if dialect == "postgresql":
        options: dict[str, Any] = {"pool_pre_ping": True}
        options.update(kwargs)
        return sa.create_engine(parsed, **options)

    database = parsed.database
    options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    if _is_sqlite_memory(database):
        options["poolclass"] = StaticPool
        options["connect_args"]["check_same_thread"] = False
    elif database and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options.update(kwargs)
    engine = sa.create_engine(parsed, **options)
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def ping(engine: Engine) -> None:
    """Check that the database answers a trivial query.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: If it cannot be reached or does not answer.
    """
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar_one()


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of the store, built in code (no ``alembic.ini``).

    Args:
        connection: If given, the migrations run on this connection (and its transaction).

    Returns:
        A ``Config`` whose ``script_location`` is ``sentinel/store/migrations``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine_or_url: Engine | str) -> None:
    """Upgrade the database schema to the latest revision (``alembic upgrade head``).

    Safe to call from several processes at once: the whole upgrade runs in one transaction that
    first takes a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on
    PostgreSQL), so one process migrates while the others wait, then find the schema at head
    and do nothing. Calling it on an up-to-date database is a no-op.

    Args:
        engine_or_url: An engine from ``make_engine``, or a URL (an engine is created and
            disposed of).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: If the database fails (including a lock wait that
            outlasts SQLite's busy timeout).
    """
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url)
        try:
            _migrate(engine)
        finally:
            engine.dispose()
    else:
        _migrate(engine_or_url)


def _migrate(engine: Engine) -> None:
    with engine.connect() as conn:
        try:
            if conn.dialect.name == "sqlite":
                # pysqlite leaves DDL outside transactions; an explicit BEGIN IMMEDIATE makes
                # the version check and the DDL one atomic unit and takes the write lock up
                # front (waiting up to busy_timeout for another migrator).
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        except BaseException:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.rollback()
            raise
