"""The live socket ``/api/v1/live`` against real stores (SQLite and PostgreSQL) and Redis.

- a new alert (and an incident, and a camera's state) arrives without polling;
- a camera-limited principal never receives another camera's message;
- after a disconnect, three changes written meanwhile arrive on reconnect with the cursor
  (query parameter or first message), exactly those, in order; a stale cursor gets ``reset``;
- unauthenticated (or with a token in the URL only) it is closed with 4401, a cookie session
  from another origin with 4403;
- two app instances sharing Redis (two ingress replicas) both deliver a change written
  through one, published once, and a cursor of one resumes on the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from sentinel.api.deps import Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.incidents import Incident
from sentinel.gateway.roles import Role
from sentinel.live.bus import MemoryBus, RedisBus
from sentinel.live.hub import LiveHub, LiveSettings
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.live_repo import LiveChangesRepo
from tests.integration.test_gateway_redis import REDIS_URL
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.live import live_recv
from tests.utils.services import FakeControl, make_services

FAST = LiveSettings(interval_s=0.05, camera_interval_s=0.1, read_timeout_s=1.0)
LIVE = "/api/v1/live"


def _alert(services: Services, camera: str) -> str:
    decision = AlertDecision(
        True, Severity.HIGH, f"person at {camera}", ("rule",), "look", DecidedBy.RULES
    )
    record = services.agent.alerts.record_rule_decision(
        str(uuid.uuid4()), camera, "person", decision
    )
    return record.id


def _services(engine: Engine, tmp_path: Path, bus: Any = None) -> Services:
    control = FakeControl()
    services = make_services(engine, tmp_path, control=control)
    services.live = LiveHub(
        bus or MemoryBus(), LiveChangesRepo(engine), control.statuses, settings=FAST
    )
    return services


class World:
    def __init__(self, services: Services, client: TestClient) -> None:
        self.services = services
        self.client = client
        sec = services.security
        self.operator = add_user(sec, "op", Role.OPERATOR)
        self.limited = add_user(sec, "op-a", Role.OPERATOR, cameras=["cam-a"])
        self.viewer_b = add_user(sec, "view-b", Role.VIEWER, cameras=["cam-b"])
        for cam in ("cam-a", "cam-b"):
            services.cameras.upsert(cam, {"id": cam, "source": f"/videos/{cam}.mp4"})

    def connect(self, user: AuthedUser, url: str = LIVE) -> WebSocketTestSession:
        return self.client.websocket_connect(url, headers=user.headers)


@pytest.fixture
def world(store_engine: Engine, tmp_path: Path) -> Iterator[World]:
    services = _services(store_engine, tmp_path)
    with api_client(services) as client:
        yield World(services, client)


def test_a_new_alert_arrives_without_polling(world: World) -> None:
    old = _alert(world.services, "cam-a")  # state a client loads over REST: not news
    with world.connect(world.operator) as ws:
        hello = live_recv(ws)
        assert hello["type"] == "hello" and hello["cursor"]
        alert_id = _alert(world.services, "cam-a")
        got = live_recv(ws)
        assert got["type"] == "alert" and got["id"] == alert_id != old, got
        assert got["camera_id"] == "cam-a" and got["change"] == "new"
        assert got["severity"] == "high" and got["status"] == "open"
        # An acknowledgement through the API is a change too.
        r = world.client.post(f"/api/v1/alerts/{alert_id}/ack", headers=world.operator.headers)
        assert r.status_code == 200, r.text
        got = live_recv(ws)
        assert got["id"] == alert_id and got["status"] == "acknowledged", got
        # A verdict (written by the API, outside the outbox) too.
        r = world.client.post(
            f"/api/v1/alerts/{alert_id}/feedback",
            json={"verdict": "false_positive"},
            headers=world.operator.headers,
        )
        assert r.status_code == 200, r.text
        got = live_recv(ws)
        assert got["id"] == alert_id and got["change"] == "verdict", got
        assert got["verdict"] == "false_positive"


def test_incidents_and_camera_states_arrive(world: World) -> None:
    control = world.services.control
    assert isinstance(control, FakeControl)
    with world.connect(world.operator) as ws:
        live_recv(ws)
        now = datetime.now(UTC)
        inc = Incident(
            id=str(uuid.uuid4()),
            camera_id="cam-b",
            started_at=now,
            last_seen_at=now,
            ended_at=None,
            members=(str(uuid.uuid4()),),
            labels=("car",),
        )
        IncidentRepository(world.services.engine).upsert(inc)
        got = live_recv(ws)
        assert got["type"] == "incident" and got["id"] == inc.id and got["labels"] == ["car"]
        control.started_ids.append("cam-a")
        got = live_recv(ws)
        assert got["type"] == "camera" and got["camera_id"] == "cam-a"
        assert got["state"] == "running"


def test_a_camera_limited_user_never_gets_another_cameras_message(world: World) -> None:
    control = world.services.control
    assert isinstance(control, FakeControl)
    with world.connect(world.limited) as a, world.connect(world.operator) as every:
        live_recv(a), live_recv(every)
        _alert(world.services, "cam-b")
        control.started_ids.append("cam-b")
        seen = [live_recv(every), live_recv(every)]  # the unlimited operator gets both
        assert {m["type"] for m in seen} == {"alert", "camera"}
        assert {m["camera_id"] for m in seen} == {"cam-b"}
        b_alert = next(m for m in seen if m["type"] == "alert")
        own = _alert(world.services, "cam-a")
        got = live_recv(a)  # the first message it gets is its own camera's: B's were dropped
        assert got["camera_id"] == "cam-a" and got["id"] == own, got
        assert "cam-b" not in str(got) and b_alert["id"] not in str(got)


def test_reconnect_with_the_cursor_gets_exactly_the_missed_messages(world: World) -> None:
    with world.connect(world.operator) as ws:
        live_recv(ws)
        _alert(world.services, "cam-a")
        cursor = live_recv(ws)["cursor"]
    missed = [_alert(world.services, cam) for cam in ("cam-a", "cam-b", "cam-a")]
    for how in ("query", "message"):
        url = f"{LIVE}?cursor={cursor}" if how == "query" else LIVE
        with world.connect(world.operator, url) as ws:
            live_recv(ws)
            if how == "message":
                ws.send_json({"resume": cursor})
            got = [live_recv(ws) for _ in missed]
            assert [g["id"] for g in got] == missed, how
            assert [g["change"] for g in got] == ["new"] * len(missed)
            later = _alert(world.services, "cam-b")
            assert live_recv(ws)["id"] == later, how  # nothing else came in between
        cursor = got[-1]["cursor"]
        missed = [later]
    with world.connect(world.operator, f"{LIVE}?cursor=0123abcd-1") as ws:  # not this bus's
        live_recv(ws)
        assert live_recv(ws)["type"] == "reset"


@pytest.mark.parametrize(
    ("headers", "url", "code"),
    [
        ({}, LIVE, 4401),
        ({"Authorization": "Bearer not-a-token"}, LIVE, 4401),
        ({}, "TOKEN_IN_URL", 4401),
        ({"X-API-Key": "nope"}, LIVE, 4401),
    ],
    ids=["anonymous", "bad-token", "token-in-url", "bad-key"],
)
def test_unauthenticated_is_refused(
    world: World, headers: dict[str, str], url: str, code: int
) -> None:
    if url == "TOKEN_IN_URL":
        url = f"{LIVE}?access_token={world.operator.token}&token={world.operator.token}"
    with (
        world.client.websocket_connect(url, headers=headers) as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        live_recv(ws)
    assert refused.value.code == code


def test_the_cookie_session_works_from_its_own_origin_only(world: World) -> None:
    sec = world.services.security
    token = world.operator.token
    world.client.cookies.set("sentinel_session", token)
    try:
        with world.client.websocket_connect(LIVE, headers={"Origin": "http://testserver"}) as ws:
            assert live_recv(ws)["type"] == "hello"
        for origin in ({"Origin": "https://evil.example"}, {}):
            with (
                world.client.websocket_connect(LIVE, headers=origin) as ws,
                pytest.raises(WebSocketDisconnect) as refused,
            ):
                live_recv(ws)
            assert refused.value.code == 4403
    finally:
        world.client.cookies.clear()
    assert sec is world.services.security


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"sentinel:test-live:{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


def test_two_replicas_sharing_redis_both_deliver(
    store_engine: Engine, tmp_path: Path, stream: str
) -> None:
    def replica() -> Services:
        bus = RedisBus(aioredis.Redis.from_url(REDIS_URL), stream=stream)
        return _services(store_engine, tmp_path, bus)  # one data dir: the same keys

    one, two = replica(), replica()
    with ExitStack() as stack:
        c1 = stack.enter_context(api_client(one))
        c2 = stack.enter_context(api_client(two))
        op = add_user(one.security, "op", Role.OPERATOR)
        ws1 = stack.enter_context(c1.websocket_connect(LIVE, headers=op.headers))
        ws2 = stack.enter_context(c2.websocket_connect(LIVE, headers=op.headers))
        live_recv(ws1), live_recv(ws2)
        alert_id = _alert(one, "cam-a")  # written through replica one's stores
        got1, got2 = live_recv(ws1), live_recv(ws2)
        assert got1["id"] == got2["id"] == alert_id
        assert got1["cursor"] == got2["cursor"]  # one stream entry, read by both
        entries = redis.Redis.from_url(REDIS_URL).xrange(stream)
        # Both replicas observed it; one published it.
        assert entries is not None and len(entries) == 1, entries
        # A client of replica one resumes on replica two.
        ws1.close()
        missed = [_alert(two, "cam-a"), _alert(one, "cam-b")]
        with c2.websocket_connect(f"{LIVE}?cursor={got1['cursor']}", headers=op.headers) as ws:
            live_recv(ws)
            assert [live_recv(ws)["id"] for _ in missed] == missed
