"""Camera limits and rate limits through the HTTP API (SQLite and PostgreSQL).

- API keys are capped at their creator's role, scopes and cameras;
- a user limited by ``group:<name>`` sees the group's cameras (and their events, alerts,
  snapshots, frames) and nothing else;
- with ``redis_url`` set, the per-route buckets live in Redis (database 15 of the local server):
  two app instances over it share one limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.app import create_app
from sentinel.api.deps import Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.gateway.ratelimit import RedisRateLimiter
from sentinel.gateway.roles import ROLE_SCOPES, Role
from sentinel.store.objects import snapshot_key
from tests.integration.test_gateway_redis import REDIS_URL
from tests.utils.auth import AuthedUser, add_user, make_security
from tests.utils.services import FakeControl, make_services

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
GROUPS = {"cam-a": ["front"], "cam-b": ["back"], "cam-c": ["front", "lobby"]}


@dataclass
class Seeded:
    events: dict[str, str]  # camera -> event id
    alerts: dict[str, str]  # camera -> alert id


def _seed(services: Services, control: FakeControl) -> Seeded:
    """Each camera of GROUPS, running, with one event (and snapshot) and one alert."""
    seeded = Seeded({}, {})
    for n, (cam, groups) in enumerate(GROUPS.items(), start=1):
        services.cameras.upsert(cam, {"id": cam, "source": f"/videos/{cam}.mp4", "groups": groups})
        control.started_ids.append(cam)
        control.frames[cam] = b"\xff\xd8frame-" + cam.encode()
        ev = EventState(
            id=f"00000000-0000-0000-0000-{n:012d}",
            camera_id=cam,
            label="person",
            track_id=n,
            started_at=T0 + timedelta(minutes=n),
            last_seen_at=T0 + timedelta(minutes=n, seconds=5),
            score=0.9,
            box=Box(1, 2, 30, 60),
            best_at=T0 + timedelta(minutes=n),
            ended_at=T0 + timedelta(minutes=n, seconds=5),
        )
        key = snapshot_key(cam, ev.id)
        services.objects.put(key, b"\xff\xd8snap-" + cam.encode(), "image/jpeg")
        services.events.upsert(ev, key)
        seeded.events[cam] = ev.id
        decision = AlertDecision(
            True, Severity.MEDIUM, f"person at {cam}", ("rule",), "look", DecidedBy.RULES
        )
        alert = services.agent.alerts.record_rule_decision(ev.id, cam, "person", decision)
        seeded.alerts[cam] = alert.id
    return seeded


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, control: FakeControl) -> Services:
    return make_services(store_engine, tmp_path, control=control)


@pytest.fixture
def seeded(services: Services, control: FakeControl) -> Seeded:
    return _seed(services, control)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app()
    app.state.services = services
    with TestClient(app) as c:
        yield c


# --- API keys are capped at their creator ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "cameras", "scopes"),
    [
        ({}, 201, ["cam-a"], sorted(ROLE_SCOPES[Role.VIEWER])),
        ({"role": "operator"}, 201, ["cam-a"], sorted(ROLE_SCOPES[Role.OPERATOR])),
        ({"cameras": ["cam-a"]}, 201, ["cam-a"], sorted(ROLE_SCOPES[Role.VIEWER])),
        (
            {"role": "operator", "scopes": ["events:read", "users:admin", "cameras:write"]},
            201,
            ["cam-a"],
            ["events:read"],
        ),
        ({"cameras": ["cam-b"]}, 403, None, None),
        ({"cameras": ["cam-a", "cam-b"]}, 403, None, None),
        ({"cameras": ["group:front"]}, 403, None, None),  # cam-c is in front too
        ({"cameras": ["group:back"]}, 403, None, None),
        ({"role": "admin"}, 403, None, None),
        ({"role": "admin", "cameras": ["cam-a"]}, 403, None, None),
    ],
    ids=[
        "default",
        "operator",
        "own-camera",
        "scopes-capped",
        "other-camera",
        "own-and-other",
        "wider-group",
        "other-group",
        "admin-role",
        "admin-role-own-camera",
    ],
)
def test_key_of_a_camera_limited_operator_is_capped(
    client: TestClient,
    services: Services,
    seeded: Seeded,
    body: dict[str, Any],
    status: int,
    cameras: list[str] | None,
    scopes: list[str] | None,
) -> None:
    op = add_user(services.security, "op-a", Role.OPERATOR, ["cam-a"])
    r = client.post("/api/v1/apikeys", json={"name": "k", **body}, headers=op.headers)
    assert r.status_code == status, r.text
    if status != 201:
        assert services.security.apikeys.list(None) == []
        return
    created = r.json()
    assert (created["cameras"], created["scopes"]) == (cameras, scopes)
    h = {"X-API-Key": created["key"]}
    me = client.get("/api/v1/auth/me", headers=h).json()
    assert (me["cameras"], me["scopes"]) == (cameras, scopes)
    events = client.get("/api/v1/events", headers=h)
    assert [e["camera_id"] for e in events.json()["items"]] == ["cam-a"]
    assert client.get(f"/api/v1/events/{seeded.events['cam-b']}", headers=h).status_code == 404
    if "cameras:read" in me["scopes"]:
        assert [c["id"] for c in client.get("/api/v1/cameras", headers=h).json()] == ["cam-a"]
    metrics = client.get("/metrics", headers=h)
    if "metrics:read" in me["scopes"]:
        assert 'camera="cam-a"' in metrics.text
        assert 'camera="cam-b"' not in metrics.text and 'camera="cam-c"' not in metrics.text
    else:
        assert metrics.status_code == 403


def test_key_of_a_group_limited_operator_keeps_the_group(
    client: TestClient, services: Services, seeded: Seeded
) -> None:
    op = add_user(services.security, "op-front", Role.OPERATOR, ["group:front"])
    r = client.post("/api/v1/apikeys", json={"name": "k"}, headers=op.headers)
    assert r.status_code == 201 and r.json()["cameras"] == ["group:front"]
    h = {"X-API-Key": r.json()["key"]}
    assert [c["id"] for c in client.get("/api/v1/cameras", headers=h).json()] == ["cam-a", "cam-c"]
    wider = {"name": "k2", "cameras": ["group:front", "cam-b"]}
    assert client.post("/api/v1/apikeys", json=wider, headers=op.headers).status_code == 403


def test_an_api_key_cannot_mint_keys(client: TestClient, services: Services) -> None:
    """Before the fix this was a 500 (the key is no user to own the new one)."""
    op = add_user(services.security, "op", Role.OPERATOR)
    r = client.post("/api/v1/apikeys", json={"name": "k", "role": "operator"}, headers=op.headers)
    assert r.status_code == 201 and "apikeys:write" in r.json()["scopes"]
    h = {"X-API-Key": r.json()["key"]}
    again = client.post("/api/v1/apikeys", json={"name": "child"}, headers=h)
    assert again.status_code == 403, again.text
    assert [k.name for k in services.security.apikeys.list(None)] == ["k"]


# --- group: limits ------------------------------------------------------------------------------


@pytest.fixture
def front(services: Services) -> AuthedUser:
    return add_user(services.security, "front-desk", Role.VIEWER, ["group:front"])


def test_group_user_lists_only_the_groups_cameras(
    client: TestClient, seeded: Seeded, front: AuthedUser
) -> None:
    h = front.headers
    cams = client.get("/api/v1/cameras", headers=h)
    assert [c["id"] for c in cams.json()] == ["cam-a", "cam-c"]
    events = client.get("/api/v1/events", headers=h).json()["items"]
    assert sorted(e["camera_id"] for e in events) == ["cam-a", "cam-c"]
    only_b = client.get("/api/v1/events", params={"camera_id": "cam-b"}, headers=h)
    assert only_b.json()["items"] == []
    alerts = client.get("/api/v1/alerts", headers=h).json()["items"]
    assert sorted(a["id"] for a in alerts) == sorted(
        [seeded.alerts["cam-a"], seeded.alerts["cam-c"]]
    )
    only_b = client.get("/api/v1/alerts", params={"camera_id": "cam-b"}, headers=h)
    assert only_b.json()["items"] == []
    health = client.get("/health", headers=h).json()
    assert sorted(health["cameras"]) == ["cam-a", "cam-c"]


@pytest.mark.parametrize("cam", ["cam-a", "cam-b", "cam-c"])
def test_group_user_gets_one_object_only_of_the_groups_cameras(
    client: TestClient, seeded: Seeded, front: AuthedUser, cam: str
) -> None:
    h = front.headers
    visible = "front" in GROUPS[cam]
    ev, alert = seeded.events[cam], seeded.alerts[cam]
    urls = [
        f"/api/v1/cameras/{cam}",
        f"/api/v1/cameras/{cam}/latest.jpg",
        f"/api/v1/events/{ev}",
        f"/api/v1/events/{ev}/snapshot.jpg",
        f"/api/v1/alerts/{alert}",
    ]
    for url in urls:
        r = client.get(url, headers=h)
        assert r.status_code == (200 if visible else 404), f"{url}: {r.status_code} {r.text}"
        if visible:
            assert cam.encode() in r.content, url
    snap = client.get(f"/api/v1/events/{ev}/snapshot.jpg", headers=h)
    assert (snap.content == b"\xff\xd8snap-" + cam.encode()) == visible


def test_group_membership_is_read_at_request_time(
    client: TestClient, services: Services, seeded: Seeded, front: AuthedUser
) -> None:
    """A camera joining or leaving the group changes what the user sees, token unchanged."""
    get_b = f"/api/v1/events/{seeded.events['cam-b']}"
    assert client.get(get_b, headers=front.headers).status_code == 404
    services.cameras.upsert(
        "cam-b", {"id": "cam-b", "source": "/videos/cam-b.mp4", "groups": ["back", "front"]}
    )
    assert client.get(get_b, headers=front.headers).status_code == 200
    services.cameras.upsert("cam-a", {"id": "cam-a", "source": "/videos/cam-a.mp4"})
    ids = [c["id"] for c in client.get("/api/v1/cameras", headers=front.headers).json()]
    assert ids == ["cam-b", "cam-c"]


# --- A camera-limited admin, created and signed in through the API ------------------------


def test_camera_limited_admin_made_through_the_api_stays_limited(
    client: TestClient, services: Services, seeded: Seeded, control: FakeControl
) -> None:
    """An admin creates another admin limited to cam-a; signed in with its password (so its
    limit comes from its user row), it and the admin key it mints are admins of cam-a only."""
    root = add_user(services.security, "root", Role.ADMIN)
    body = {
        "username": "site-admin",
        "password": "correct-horse-battery",
        "role": "admin",
        "cameras": ["cam-a"],
    }
    made = client.post("/api/v1/users", json=body, headers=root.headers)
    assert made.status_code == 201, made.text
    assert (made.json()["role"], made.json()["cameras"]) == ("admin", ["cam-a"])
    login = {"username": "site-admin", "password": "correct-horse-battery"}
    token = client.post("/api/v1/auth/token", data=login).json()["access_token"]
    user_h = {"Authorization": f"Bearer {token}"}
    minted = client.post(
        "/api/v1/apikeys", json={"name": "ops", "role": "admin"}, headers=user_h
    ).json()
    assert minted["cameras"] == ["cam-a"] and "users:admin" in minted["scopes"]
    # Its own keys only: the user sees the key it minted, the key (owning none) sees none.
    for h, own_keys in ((user_h, [minted["id"]]), ({"X-API-Key": minted["key"]}, [])):
        assert client.delete("/api/v1/cameras/cam-b", headers=h).status_code == 404
        new = {"id": "cam-z", "source": "/videos/z.mp4"}
        assert client.post("/api/v1/cameras", json=new, headers=h).status_code == 403
        assert client.get("/api/v1/users", headers=h).status_code == 403
        lift = {"all_cameras": True}
        me = made.json()["id"]
        assert client.patch(f"/api/v1/users/{me}", json=lift, headers=h).status_code == 403
        assert client.get("/api/v1/audit", headers=h).status_code == 403
        keys = client.get("/api/v1/apikeys", headers=h).json()
        assert [k["id"] for k in keys] == own_keys
    assert services.cameras.get("cam-b") is not None and "cam-b" not in control.removed_ids
    user = services.security.users.get(made.json()["id"])
    assert user is not None and list(user.cameras or ()) == ["cam-a"]
    # Inside its limits it is a full admin of its camera.
    assert client.delete("/api/v1/cameras/cam-a", headers=user_h).status_code == 204
    again = {"id": "cam-a", "source": "/videos/cam-a.mp4"}
    assert client.post("/api/v1/cameras", json=again, headers=user_h).status_code == 201


# --- Redis rate limiting through the API ----------------------------------------------------


def test_redis_rate_limit_is_shared_by_two_app_instances(
    store_engine: Engine, tmp_path: Path
) -> None:
    securities = [
        make_security(store_engine, tmp_path, redis_url=REDIS_URL, rate_per_s=0.01, rate_burst=3)
        for _ in range(2)
    ]
    assert all(isinstance(s.limiter, RedisRateLimiter) for s in securities)
    user = add_user(securities[0], "busy", Role.VIEWER)  # same database and keys: both accept
    limiter = securities[0].limiter
    assert isinstance(limiter, RedisRateLimiter)
    bucket = limiter.key_for(f"{user.id}:events")
    store = redis.Redis.from_url(REDIS_URL)
    try:
        assert not store.exists(bucket)
        clients = []
        for security in securities:
            app = create_app()
            app.state.services = make_services(store_engine, tmp_path, security=security)
            clients.append(TestClient(app))
        with clients[0] as one, clients[1] as two:
            codes = [
                c.get("/api/v1/events", headers=user.headers).status_code
                for c in (one, two, one, two, one)
            ]
            assert codes == [200, 200, 200, 429, 429]
            refused = two.get("/api/v1/events", headers=user.headers)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            # the bucket is in Redis, not in either process, and expires once it would be full
            assert store.exists(bucket)
            assert 0 < store.pttl(bucket) <= 3 / 0.01 * 1000
            # another route family has its own bucket
            assert one.get("/api/v1/cameras", headers=user.headers).status_code == 200
    finally:
        keys = [bucket, limiter.key_for(f"{user.id}:cameras")]
        store.delete(*keys)
        store.close()


# --- /metrics in metrics_public mode --------------------------------------------------------


def test_public_metrics_show_every_camera_to_everyone(
    store_engine: Engine, tmp_path: Path, control: FakeControl
) -> None:
    """The documented trade-off of ``metrics_public``: a scraper's view, credentials or not."""
    services = make_services(store_engine, tmp_path, control=control, auth={"metrics_public": True})
    _seed(services, control)
    op = add_user(services.security, "op-a", Role.OPERATOR, ["cam-a"])
    app = create_app()
    app.state.services = services
    with TestClient(app) as c:
        for headers in ({}, op.headers):
            r = c.get("/metrics", headers=headers)
            assert r.status_code == 200
            assert all(f'camera="{cam}"' in r.text for cam in GROUPS), headers
