"""Database fixtures: every store test runs on SQLite and on PostgreSQL.

Register in ``tests/conftest.py`` with ``pytest_plugins = ["tests.utils.db"]``, then ask for:

- ``db_url``: a URL of an empty database, parametrized ``[sqlite]`` (a file under ``tmp_path``)
  and ``[postgresql]`` (marked ``postgres``): a dedicated schema per test, created before and
  dropped (``CASCADE``) after, selected through ``?options=-csearch_path%3D<schema>`` in the
  URL, so tests never see each other's tables even when they share the database.
- ``store_engine``: an engine from ``make_engine(db_url)``, migrated to head, disposed after.

The PostgreSQL server comes from ``SENTINEL_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). If it cannot be reached the PostgreSQL
tests fail with an error saying so: they are never skipped (deselect them with
``-m "not postgres"`` on purpose instead).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from sentinel.store.db import make_engine, migrate, sqlite_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    """The URL of the PostgreSQL database the tests may create schemas in."""
    return os.environ.get("SENTINEL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def with_search_path(url: str, schema: str) -> str:
    """``url`` with libpq ``options=-csearch_path=<schema>``, as ``make_engine`` accepts it."""
    parsed = sa.make_url(url)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL of a fresh, empty PostgreSQL schema, dropped with everything in it afterwards."""
    base = postgres_base_url()
    schema = f"sentinel_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        shown = sa.make_url(base).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is unreachable at {shown} ({exc.orig}). Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, set "
            "SENTINEL_TEST_POSTGRES_URL, or deselect these tests with -m 'not postgres'.",
            pytrace=False,
        )
    try:
        yield with_search_path(base, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, once on SQLite and once on PostgreSQL (see the module docstring)."""
    if request.param == "sqlite":
        # A folder that does not exist yet: make_engine must create it.
        return sqlite_url(tmp_path / "db" / "sentinel.db")
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def store_engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``, migrated to the latest revision."""
    engine = make_engine(db_url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
