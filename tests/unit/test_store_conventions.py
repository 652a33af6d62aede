"""One way to do each shared thing in the store: the ``Clock`` type, the SQL helpers."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import dml as postgresql_dml
from sqlalchemy.dialects.sqlite import dml as sqlite_dml

import sentinel.store
from sentinel.store.sql import (
    MAX_PAGE_SIZE,
    InvalidCursor,
    as_utc,
    check_choice,
    check_page_size,
    decode_cursor,
    encode_cursor,
    require_aware,
    sqlite_lock,
    upsert_insert,
    utc_range,
)

STORE = Path(sentinel.store.__file__).parent


def _store_modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.iter_modules(sentinel.store.__path__, "sentinel.store.")
        if m.name != "sentinel.store.migrations"
    ]


def _clock_parameters() -> list[tuple[str, str]]:
    found = []
    for name in _store_modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name:
                continue
            parameter = inspect.signature(cls.__init__).parameters.get("clock")
            if parameter is not None:
                found.append((f"{name}.{cls_name}", str(parameter.annotation)))
    return found


def test_every_repository_takes_the_store_clock() -> None:
    found = _clock_parameters()
    assert len(found) >= 12, found  # every repository with a clock was seen
    assert [p for p in found if p[1] != "Clock"] == []


@pytest.mark.parametrize(
    "path", sorted(STORE.rglob("*.py")), ids=lambda p: str(p.relative_to(STORE))
)
def test_no_store_module_imports_another_modules_private_names(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sentinel")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert private == []


def test_as_utc_converts_aware_and_rejects_naive() -> None:
    paris = timezone(timedelta(hours=1))
    assert as_utc(datetime(2026, 1, 1, 13, tzinfo=paris), "at") == datetime(
        2026, 1, 1, 12, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="at must be a timezone-aware datetime"):
        as_utc(datetime(2026, 1, 1), "at")
    require_aware(None, "since")  # None means "no bound"
    with pytest.raises(ValueError, match="since must be a timezone-aware"):
        require_aware(datetime(2026, 1, 1), "since")


def test_utc_range_orders_its_bounds() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert utc_range(t, t + timedelta(seconds=1)) == (t, t + timedelta(seconds=1))
    with pytest.raises(ValueError, match="is before start"):
        utc_range(t + timedelta(seconds=1), t)


@pytest.mark.parametrize(
    ("limit", "ok"), [(0, False), (1, True), (MAX_PAGE_SIZE, True), (MAX_PAGE_SIZE + 1, False)]
)
def test_page_size_bounds(limit: int, ok: bool) -> None:
    if ok:
        check_page_size(limit)
    else:
        with pytest.raises(ValueError, match="limit must be between 1 and"):
            check_page_size(limit)


def test_check_choice_names_the_choices() -> None:
    check_choice("a", frozenset({"a", "b"}), "kind")
    with pytest.raises(ValueError, match=r"kind must be one of \['a', 'b'\], but got 'c'"):
        check_choice("c", frozenset({"a", "b"}), "kind")


def test_cursor_round_trips_and_rejects_garbage() -> None:
    at = datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "row-1")) == (at, "row-1")
    for bad in ("!!", "bm90LWEtY3Vyc29y", encode_cursor(at, "")):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)


def test_upsert_insert_per_dialect_and_one_sqlite_lock_per_engine() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    one, two = sa.create_engine("sqlite://"), sa.create_engine("sqlite://")
    assert isinstance(upsert_insert(one, table), sqlite_dml.Insert)
    pg = sa.create_engine("postgresql+psycopg://u@127.0.0.1/x")  # never connects
    assert isinstance(upsert_insert(pg, table), postgresql_dml.Insert)
    assert sqlite_lock(one) is sqlite_lock(one)
    assert sqlite_lock(one) is not sqlite_lock(two)
