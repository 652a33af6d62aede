"""Shared test setup: offline, no Ray auth for the local cluster, database fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest_plugins = ["tests.utils.db", "tests.utils.model", "tests.utils.s3"]

# The session's Ray stack (tests/integration/conftest.py `sentinel_stack`) keeps its actors and
# deployments running from the first test that asks for it to the end of the session: their
# loops share the machine's two cores with every later test. The modules that use it run last,
# in their usual order, so that the others (unit tests included) run beside no idle cluster.
STACK_FIXTURE = "sentinel_stack"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    on_stack = {item.path for item in items if STACK_FIXTURE in _fixtures(item)}
    items.sort(key=lambda item: item.path in on_stack)  # stable: order kept within each


def _fixtures(item: pytest.Item) -> tuple[str, ...]:
    return tuple(getattr(item, "fixturenames", ()))
