"""Every route x {anonymous, viewer limited to camera A, operator, admin}.

Asserts the status each principal gets and that nothing the camera-A viewer receives mentions
camera B. The route→scope table in tests/route_scopes.json is regenerated from the app and
must match the committed one: a route that silently lost its guard fails the build. After an
intended change, regenerate it with `SENTINEL_UPDATE_ROUTE_TABLE=1 pytest <this file>`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from sentinel.api.app import create_app
from sentinel.api.deps import Services
from sentinel.api.security import authorize, require_metrics
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.experiments import Variant
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.gateway.tokens import new_opaque_token
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.export_repo import ExportRepository
from sentinel.store.objects import snapshot_key
from sentinel.store.segment_repo import SegmentRepository
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import FakeControl, make_services

TABLE = Path(__file__).resolve().parents[1] / "route_scopes.json"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PRINCIPALS = ["anonymous", "viewer_a", "operator", "admin"]


def _api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, through included routers (FastAPI keeps those as
    nested objects rather than copies)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            yield from _api_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )


def route_table(app: FastAPI) -> dict[str, str]:
    """``"METHOD /path" -> "public" | "scopes: a b" | "authenticated"`` for every API route."""
    table: dict[str, str] = {}
    for path, route in _api_routes(app.routes):
        if not route.include_in_schema:
            continue
        guards: list[str] = []
        stack = list(route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            if dep.call is authorize:
                scopes = sorted(getattr(dep, "oauth_scopes", None) or dep.own_oauth_scopes or [])
                guards.append("scopes: " + " ".join(scopes) if scopes else "authenticated")
            elif dep.call is require_metrics:
                guards.append("scopes: metrics:read (unless auth.metrics_public)")
            stack.extend(dep.dependencies)
        for method in sorted(route.methods or ()):
            table[f"{method} {path}"] = "; ".join(sorted(set(guards))) or "public"
    return dict(sorted(table.items()))


class EchoLlm:
    """Stands in for the LLM deployment: the walk checks guards, not generation."""

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}}], "usage": {}}


@dataclass
class World:
    client: TestClient
    services: Services
    users: dict[str, AuthedUser]
    event_a: str
    event_b: str
    victim_user: str
    admin_key: str
    alert_a: str
    alert_b: str
    experiment: str


def _event(camera: str, n: int) -> EventState:
    return EventState(
        id=f"00000000-0000-0000-0000-{n:012d}",
        camera_id=camera,
        label="person",
        track_id=n,
        started_at=T0 + timedelta(minutes=n),
        last_seen_at=T0 + timedelta(minutes=n, seconds=5),
        score=0.9,
        box=Box(1, 2, 30, 60),
        best_at=T0 + timedelta(minutes=n),
        ended_at=T0 + timedelta(minutes=n, seconds=5),
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(sqlite_url(tmp_path / "db.sqlite"))
    migrate(engine)
    control = FakeControl()
    services = make_services(
        engine,
        tmp_path,
        control=control,
        segments=SegmentRepository(engine),
        exports=ExportRepository(engine),
    )
    for cam in ("cam-a", "cam-b"):
        services.cameras.upsert(cam, {"id": cam, "source": f"/videos/{cam}.mp4"})
        control.started_ids.append(cam)
        control.frames[cam] = b"\xff\xd8" + cam.encode()
    ids = {}
    for n, cam in enumerate(("cam-a", "cam-b"), start=1):
        ev = _event(cam, n)
        key = snapshot_key(cam, ev.id)
        services.objects.put(key, b"\xff\xd8" + cam.encode(), "image/jpeg")
        services.events.upsert(ev, key)
        ids[cam] = ev.id
    sec = services.security
    users = {
        "viewer_a": add_user(sec, "viewer-a", Role.VIEWER, ["cam-a"]),
        "operator": add_user(sec, "operator", Role.OPERATOR),
        "admin": add_user(sec, "admin", Role.ADMIN),
    }
    victim = add_user(sec, "victim", Role.VIEWER)
    _, digest = new_opaque_token("sk_")
    admin_key = sec.apikeys.create(
        "k", "sk_xxxxx", digest, "viewer", ["events:read"], None, users["admin"].id
    )
    agent = services.agent
    agent.llm = EchoLlm()
    alert_ids = {}
    for cam in ("cam-a", "cam-b"):
        rule = AlertDecision(
            True, Severity.MEDIUM, f"person at {cam}", ("rule",), "look", DecidedBy.RULES
        )
        alert_ids[cam] = agent.alerts.record_rule_decision(ids[cam], cam, "person", rule).id
    agent.prompts.create_version("alert", "system", "Event {label}", users["admin"].id)
    exp = agent.experiments.create("ab", "alert", [Variant("a", "1", 1.0), Variant("b", "1", 1.0)])
    app = create_app()
    app.state.services = services
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(
            client,
            services,
            users,
            ids["cam-a"],
            ids["cam-b"],
            victim.id,
            admin_key.id,
            alert_ids["cam-a"],
            alert_ids["cam-b"],
            exp.id,
        )


def _requests(w: World, method: str, path: str) -> list[dict[str, Any]]:
    """Concrete requests for one route: camera/event params once for A and once for B."""
    subs: list[dict[str, str]] = [{}]
    if "{camera_id}" in path:
        subs = [{"camera_id": "cam-a"}, {"camera_id": "cam-b"}]
    elif "{event_id}" in path:
        subs = [{"event_id": w.event_a}, {"event_id": w.event_b}]
    elif "{user_id}" in path:
        subs = [{"user_id": w.victim_user}]
    elif "{key_id}" in path:
        subs = [{"key_id": w.admin_key}]
    elif "{alert_id}" in path:
        subs = [{"alert_id": w.alert_a}, {"alert_id": w.alert_b}]
    elif "{experiment_id}" in path:
        subs = [{"experiment_id": w.experiment}]
    elif "{name}" in path:
        subs = [{"name": "alert", "version": "1"}]
    bodies: dict[str, dict[str, Any]] = {
        "POST /api/v1/cameras": {"json": {"id": "cam-new", "source": "/videos/new.mp4"}},
        "POST /api/v1/users": {
            "json": {"username": "newbie", "password": "correct-horse-battery", "role": "viewer"}
        },
        "PATCH /api/v1/users/{user_id}": {"json": {"role": "viewer"}},
        "POST /api/v1/apikeys": {"json": {"name": "integration", "role": "viewer"}},
        "POST /api/v1/auth/mfa/confirm": {"json": {"code": "000000"}},
        "POST /api/v1/auth/token": {"data": {"username": "admin", "password": "wrong-password"}},
        "POST /api/v1/auth/session": {"data": {"username": "admin", "password": "wrong-password"}},
        "POST /api/v1/auth/refresh": {"data": {"refresh_token": "srt_not-a-real-token"}},
        "POST /api/v1/alerts/{alert_id}/feedback": {"json": {"verdict": "false_positive"}},
        "POST /api/v1/prompts/{name}": {"json": {"system": "s", "template": "A {label}"}},
        "POST /api/v1/experiments": {
            "json": {
                "name": "ab2",
                "variants": [
                    {"name": "a", "prompt_version": 1, "weight": 1},
                    {"name": "b", "prompt_version": 1, "weight": 1},
                ],
            }
        },
        "POST /api/v1/experiments/{experiment_id}/promote": {"json": {"variant": "a"}},
        "GET /api/v1/cameras/{camera_id}/recordings": {
            "params": {"since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
        },
        "GET /api/v1/cameras/{camera_id}/clip.mp4": {
            "params": {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=10)).isoformat()}
        },
        "GET /api/v1/cameras/{camera_id}/hls.m3u8": {
            "params": {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
        },
        "POST /api/v1/exports": {
            "json": {
                "camera_id": "cam-a",
                "start": T0.isoformat(),
                "end": (T0 + timedelta(seconds=10)).isoformat(),
                "name": "walk",
            }
        },
        "POST /v1/chat/completions": {
            "json": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        },
    }
    body = bodies.get(f"{method} {path}", {})
    out = []
    for sub in subs:
        url = path
        for name, value in sub.items():
            url = url.replace("{" + name + "}", value)
        out.append({"method": method, "url": url, **body})
    return out


def _order(key: str) -> tuple[int, str]:
    method = key.split(" ", 1)[0]
    return ({"GET": 0, "POST": 1, "PATCH": 2, "DELETE": 3}.get(method, 4), key)


def test_route_table_has_not_drifted() -> None:
    table = route_table(create_app())
    if os.environ.get("SENTINEL_UPDATE_ROUTE_TABLE") == "1":
        TABLE.write_text(json.dumps(table, indent=2) + "\n")
    committed = json.loads(TABLE.read_text())
    assert table == committed, (
        "the route→scope table changed; if intended, regenerate tests/route_scopes.json with "
        "SENTINEL_UPDATE_ROUTE_TABLE=1 and review the diff"
    )


def test_every_guarded_route_has_scopes_or_is_meant_public() -> None:
    public = {k for k, v in route_table(create_app()).items() if v == "public"}
    assert public == {
        "GET /health",
        "GET /health/ready",
        "GET /.well-known/jwks.json",
        "POST /api/v1/auth/token",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/session",
    }


@pytest.mark.parametrize("who", PRINCIPALS)
def test_walk_every_route(world: World, who: str) -> None:
    table = route_table(world.client.app)  # type: ignore[arg-type]
    headers = world.users[who].headers if who in world.users else {}
    principal_scopes: set[str] = set()
    if who != "anonymous":
        me = world.client.get("/api/v1/auth/me", headers=headers).json()
        principal_scopes = set(me["scopes"])
    for key in sorted(table, key=_order):
        method, path = key.split(" ", 1)
        guard = table[key]
        for req in _requests(world, method, path):
            r = world.client.request(headers=headers, **req)
            where = f"{who} {req['method']} {req['url']} -> {r.status_code} {r.text[:200]}"
            assert r.status_code < 500, where
            if guard == "public":
                pass
            elif who == "anonymous":
                assert r.status_code == 401, where
            else:
                needed = (
                    set(guard.removeprefix("scopes: ").split(" (")[0].split())
                    if (guard.startswith("scopes:"))
                    else set()
                )
                if needed <= principal_scopes:
                    assert r.status_code not in (401, 403), where
                else:
                    assert r.status_code == 403, where
            if who == "viewer_a":
                assert "cam-b" not in r.text, where
                assert world.event_b not in r.text, where
                assert world.alert_b not in r.text, where
                if any(x in req["url"] for x in ("cam-b", world.event_b, world.alert_b)):
                    assert r.status_code in (403, 404), where
            assert "argon2" not in r.text, where  # no password hash ever leaves
