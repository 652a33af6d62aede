"""Database fixtures: every store test runs on SQLite and on PostgreSQL.

Register in ``tests/conftest.py`` with ``pytest_plugins = ["tests.utils.db"]``, then ask for:

- ``db_url``: a URL of an empty database, parametrized ``[sqlite]`` (a file under ``tmp_path``)
  and ``[postgresql]`` (marked ``postgres``): a dedicated schema per test, created before and
  dropped (``CASCADE``) after, selected through ``?options=-csearch_path%3D<schema>`` in the
  URL, so tests never see each other's tables even when they share the database.
- ``store_engine``: an engine from ``make_engine(db_url)``, migrated to head, disposed after.
  The schema at head is built once per session by the migrations themselves (a template) and
  copied into each test's database: SQLite's file by the backup API, PostgreSQL's schema by
  replaying ``pg_dump``'s script of the template (with the rows the migrations insert). Where
  ``pg_dump`` is missing or fails, each test migrates its own schema as before. The migrations'
  own tests (``test_migration_*``) start from ``db_url`` and run them step by step.

The PostgreSQL server comes from ``SENTINEL_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). If it cannot be reached the PostgreSQL
tests fail with an error saying so: they are never skipped (deselect them with
``-m "not postgres"`` on purpose instead).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, for ``store_engine`` to copy."""
    path = tmp_path_factory.mktemp("db-template") / "sentinel.db"
    engine = make_engine(sqlite_url(path))
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str] | None]:
    """``(script, placeholder)``: pg_dump's script of a schema migrated to head, its schema's
    name the placeholder; None when pg_dump is not there or fails (then tests migrate)."""
    base = postgres_base_url()
    schema = f"sentinel_template_{uuid.uuid4().hex[:16]}"
    url = sa.make_url(base)
    pg_dump = shutil.which("pg_dump")
    admin = sa.create_engine(base, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError:
        admin.dispose()
        yield None  # each test then fails with postgres_schema_url's message
        return
    try:
        migrate(with_search_path(base, schema))
        if pg_dump is None:
            yield None
            return
        args = [pg_dump, "--schema", schema, "--no-owner", "--no-privileges", "--inserts"]
        args += ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
        args += ["-U", url.username or "postgres", "-d", url.database or "postgres"]
        env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0 or f"{schema}.alembic_version" not in done.stdout:
            yield None
            return
        lines = [
            line
            for line in done.stdout.splitlines()
            if not line.startswith(("--", "\\", f"CREATE SCHEMA {schema};"))
        ]
        yield "\n".join(lines), schema
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store_engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on ``db_url``, at the latest revision (a copy of the session's template)."""
    parsed = sa.make_url(db_url)
    cloned = False
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        template: Path = request.getfixturevalue("sqlite_template")
        target = Path(parsed.database)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        cloned = True
    elif parsed.get_backend_name() == "postgresql":
        script: tuple[str, str] | None = request.getfixturevalue("postgres_template")
        schema = str(parsed.query.get("options", "")).removeprefix("-csearch_path=")
        if script is not None and schema:
            sql, placeholder = script
            admin = sa.create_engine(postgres_base_url(), poolclass=NullPool)
            try:
                with admin.begin() as conn:
                    conn.exec_driver_sql(sql.replace(placeholder, schema))
            finally:
                admin.dispose()
            cloned = True
    engine = make_engine(db_url)
    try:
        if not cloned:
            migrate(engine)
        yield engine
    finally:
        engine.dispose()
