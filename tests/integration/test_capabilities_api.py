"""``GET /api/v1/capabilities``: what a server offers follows its services, any signed-in
principal may ask (no scope beyond signing in), and nobody else."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.engine import Engine

from sentinel import __version__
from sentinel.api.deps import SearchServices, VoiceServices
from sentinel.config import NotifySettings
from sentinel.gateway.roles import Role
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.export_repo import ExportRepository
from tests.utils.api import api_client
from tests.utils.auth import add_user
from tests.utils.services import make_services

# Presence is all the route reads: a stand-in in the field is enough (no model loads).
_PRESENT = cast(Any, object())


@pytest.fixture
def store_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: the route reads no table (users and tokens only)."""
    engine = make_engine(sqlite_url(tmp_path / "db" / "sentinel.db"))
    migrate(engine)
    yield engine
    engine.dispose()


def test_defaults_report_only_what_make_services_turns_on(
    store_engine: Engine, tmp_path: Path
) -> None:
    services = make_services(store_engine, tmp_path)
    viewer = add_user(services.security, "viewer", Role.VIEWER)
    with api_client(services) as client:
        response = client.get("/api/v1/capabilities", headers=viewer.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == __version__
    off = {"search", "ask", "kb", "voice", "speech", "exports", "recordings", "faces"}
    off |= {"models", "training", "mining", "storage", "archive", "audit_anchors"}
    assert {k for k in off if body[k]} == set()
    # make_services turns the annotation queue and the notifier (with a VAPID key) on.
    assert body["annotation"] and body["notify"] and body["push"]
    assert body["privacy"] and body["live"]
    assert all(isinstance(v, bool) for k, v in body.items() if k != "version")


def test_search_voice_and_exports_when_configured(store_engine: Engine, tmp_path: Path) -> None:
    services = make_services(
        store_engine,
        tmp_path,
        search=SearchServices(service=_PRESENT),
        voice=VoiceServices(recognize=_PRESENT),
        exports=ExportRepository(store_engine),
    )
    assert services.notify is not None
    services.notify = replace(services.notify, settings=NotifySettings(push_enabled=False))
    viewer = add_user(services.security, "viewer", Role.VIEWER)
    with api_client(services) as client:
        body = client.get("/api/v1/capabilities", headers=viewer.headers).json()
    assert body["search"] and body["ask"] and body["voice"] and body["exports"]
    assert not body["kb"]  # search without a knowledge base
    assert body["speech"] == (shutil.which("espeak-ng") is not None)
    assert body["notify"] and not body["push"]  # push off in the settings, key or not
    assert not body["recordings"] and not body["faces"]


def test_no_settings_values_leak(store_engine: Engine, tmp_path: Path) -> None:
    services = make_services(store_engine, tmp_path)
    viewer = add_user(services.security, "viewer", Role.VIEWER)
    with api_client(services) as client:
        text = client.get("/api/v1/capabilities", headers=viewer.headers).text
    assert "secret" not in text and str(tmp_path) not in text and "127.0.0.1" not in text


def test_needs_credentials(store_engine: Engine, tmp_path: Path) -> None:
    services = make_services(store_engine, tmp_path)
    with api_client(services) as client:
        assert client.get("/api/v1/capabilities").status_code == 401
        bad = {"Authorization": "Bearer not-a-token"}
        assert client.get("/api/v1/capabilities", headers=bad).status_code == 401
