"""Alembic environment of the Sentinel store.

``sentinel.store.db.migrate`` builds the Alembic ``Config`` in code and hands over an open
connection in ``config.attributes["connection"]`` (already inside the transaction that holds the
migration lock), so no ``alembic.ini`` is needed at run time. Without a connection (the
``alembic`` command line, with ``-x url=...`` or ``sqlalchemy.url`` set), an engine is built with
``make_engine`` from that URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import sentinel.store.agent_tables  # registers the alert agent's tables too
import sentinel.store.annotation_tables  # registers the annotation and dataset tables too
import sentinel.store.export_tables  # registers the exports table too
import sentinel.store.incident_tables  # registers the incident tables too
import sentinel.store.kb_tables  # registers the knowledge base tables too
import sentinel.store.notify_tables  # registers the notifier tables too
import sentinel.store.recording_tables  # registers the recordings' segments table too
import sentinel.store.rule_tables  # registers the rule tables too
import sentinel.store.search_tables  # registers the search indexing queue too
import sentinel.store.security_tables  # registers the security tables too
import sentinel.store.tables  # noqa: F401 - registers the tables on SQLModel.metadata
from sentinel.store.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite runs DDL inside a transaction too: migrate() opened one with BEGIN IMMEDIATE.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL as a script (``alembic upgrade head --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection migrate() passed, or on a fresh engine."""
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
