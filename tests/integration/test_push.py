"""Web Push end to end: browsers subscribe through the API, the notifier's relay pushes new
alerts to a push service on 127.0.0.1, which checks the VAPID JWT under the served key, and the
browser decrypts the aes128gcm body; camera limits, 410s, bad bodies and ownership; on SQLite
and PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import NotifyServices, Services
from sentinel.config import NotifySettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.gateway.roles import Role
from sentinel.notify.relay import VAPID_KEY_FILE, Relay, TickReport, make_relay, vapid_of
from sentinel.store.alert_repo import AlertRecord, AlertRepository
from sentinel.store.notify_repo import NotifyRepository
from sentinel.store.push_repo import PushRepository
from sentinel.store.security_repo import UserRepository
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.push_service import Browser, PushService, check_vapid
from tests.utils.services import make_services

KEY = "/api/v1/push/vapid-key"
SUBS = "/api/v1/push/subscriptions"


def literal_only(host: str, port: int) -> list[str]:
    """Tests resolve no names (no traffic leaves the machine): IP literals only."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        raise OSError(f"{host}: no DNS in tests") from None


@pytest.fixture
def push_service() -> Iterator[PushService]:
    s = PushService()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def settings() -> NotifySettings:
    return NotifySettings(
        allow_http=True,  # the local push service speaks plain http on 127.0.0.1
        allow_hosts=["127.0.0.1"],
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
        timeout_s=2.0,
        push_subject="mailto:ops@example.com",
        push_ttl_s=600,
        mqtt={"enabled": False},
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def services(
    store_engine: Engine, tmp_path: Path, settings: NotifySettings, data_dir: Path
) -> Services:
    notify = NotifyServices(
        settings,
        "hook",
        "link",
        lambda: {},
        resolver=literal_only,
        vapid=vapid_of(settings, data_dir),
    )
    services = make_services(store_engine, tmp_path, notify=notify)
    services.cameras.upsert("cam-a", {"id": "cam-a", "source": "/a.mp4"})
    services.cameras.upsert("cam-b", {"id": "cam-b", "source": "/b.mp4", "groups": ["yard"]})
    return services


@pytest.fixture
def users(services: Services) -> dict[str, AuthedUser]:
    return {
        "op": add_user(services.security, "op", Role.OPERATOR),
        "op_a": add_user(services.security, "op-a", Role.OPERATOR, cameras=["cam-a"]),
        "viewer_yard": add_user(services.security, "yard", Role.VIEWER, cameras=["group:yard"]),
        "annotator": add_user(services.security, "ann", Role.ANNOTATOR),
    }


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with api_client(services) as c:
        yield c


@pytest.fixture
def relay(store_engine: Engine, settings: NotifySettings, data_dir: Path) -> Iterator[Relay]:
    # The notifier actor's relay: it loads the VAPID key the API made in the data dir.
    r = make_relay(store_engine, settings, data_dir, None)
    yield r
    r.close()


def raise_alert(engine: Engine, camera: str, event: str) -> AlertRecord:
    decision = AlertDecision(
        True, Severity.HIGH, "person at the gate", ("person",), "look", DecidedBy.RULES
    )
    return AlertRepository(engine).record_rule_decision(event, camera, "person", decision)


def drain(relay: Relay, until: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the relay did not get there in time"
        if not relay.tick().busy():
            time.sleep(0.05)


def deliveries(engine: Engine, alert_id: str) -> list[Any]:
    return [d for d in NotifyRepository(engine).list_deliveries(alert_id=alert_id)[0]]


def subscribe(http: TestClient, user: AuthedUser, browser: Browser, endpoint: str) -> str:
    r = http.post(SUBS, json=browser.subscription(endpoint), headers=user.headers)
    assert r.status_code == 201, r.text
    sub_id: str = r.json()["id"]
    return sub_id


def test_subscribed_browsers_get_encrypted_signed_pushes_of_the_alerts_they_may_see(
    http: TestClient,
    users: dict[str, AuthedUser],
    push_service: PushService,
    relay: Relay,
    store_engine: Engine,
    data_dir: Path,
) -> None:
    op, op_a, yard = users["op"], users["op_a"], users["viewer_yard"]
    r = http.get(KEY, headers=op.headers)
    assert r.status_code == 200, r.text
    public_key = r.json()["public_key"]
    assert http.get(KEY).status_code == 401
    assert http.get(KEY, headers=users["annotator"].headers).status_code == 403  # no alerts:read
    key_file = data_dir / VAPID_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    browsers = {name: Browser() for name in ("op", "op_a", "yard")}
    ends = {name: push_service.endpoint(name) for name in browsers}
    sub_op = subscribe(http, op, browsers["op"], ends["op"])
    # idempotent per endpoint: the same browser again is the same subscription (200)
    again = http.post(SUBS, json=browsers["op"].subscription(ends["op"]), headers=op.headers)
    assert again.status_code == 200 and again.json()["id"] == sub_op
    subscribe(http, op_a, browsers["op_a"], ends["op_a"])
    subscribe(http, yard, browsers["yard"], ends["yard"])
    mine = http.get(SUBS, headers=op.headers).json()
    assert [s["id"] for s in mine] == [sub_op] and "keys" not in mine[0]

    on_a = raise_alert(store_engine, "cam-a", "e-a")
    on_b = raise_alert(store_engine, "cam-b", "e-b")
    # op: both; op-a (limited to cam-a): only A's; yard (group yard = cam-b): only B's
    drain(relay, lambda: len(push_service.pushes()) >= 4)
    relay.tick()
    got: dict[str, list[dict[str, Any]]] = {}
    for name, browser in browsers.items():
        for push in push_service.pushes(f"/wpush/v2/{name}"):
            claims = check_vapid(push.headers["authorization"], ends[name], public_key)
            assert claims["sub"] == "mailto:ops@example.com"
            assert push.headers["content-encoding"] == "aes128gcm"
            assert push.headers["ttl"] == "600" and push.headers["urgency"] == "high"
            got.setdefault(name, []).append(json.loads(browser.decrypt(push.body)))
    assert sorted(p["alert_id"] for p in got["op"]) == sorted([on_a.id, on_b.id])
    assert [p["alert_id"] for p in got["op_a"]] == [on_a.id]
    assert [p["alert_id"] for p in got["yard"]] == [on_b.id]
    payload = next(p for p in got["op"] if p["alert_id"] == on_b.id)
    assert payload == {
        "title": "High alert: person on cam-b",
        "body": "person at the gate",
        "alert_id": on_b.id,
        "camera_id": "cam-b",
        "url": f"/review?alert={on_b.id}",
    }
    # one browser cannot read another's push
    with pytest.raises(InvalidTag):
        browsers["op_a"].decrypt(push_service.pushes("/wpush/v2/op")[0].body)
    # the deliveries went through the notifier's model, and show no endpoint
    for d in deliveries(store_engine, on_b.id):
        assert d.channel == "webpush" and d.state == "sent", d
        assert d.target == f"http://127.0.0.1:{push_service.port}"
    assert len(deliveries(store_engine, on_b.id)) == 2
    # a second relay (the actor restarted) reads the same key from the data dir
    assert vapid_of(NotifySettings(), data_dir) is not None
    assert vapid_of(NotifySettings(), data_dir).public_key == public_key  # type: ignore[union-attr]


def test_rights_are_checked_again_when_the_push_is_sent(
    http: TestClient,
    users: dict[str, AuthedUser],
    push_service: PushService,
    relay: Relay,
    store_engine: Engine,
) -> None:
    op = users["op"]
    sub = subscribe(http, op, Browser(), push_service.endpoint("op"))
    alert = raise_alert(store_engine, "cam-b", "e-1")
    relay.plan_once(TickReport())
    (planned,) = deliveries(store_engine, alert.id)
    assert planned.subscription_id == sub and planned.state == "queued"
    UserRepository(store_engine).update(op.id, cameras=["cam-a"])  # limited before the send
    relay.send_once(TickReport())
    (d,) = deliveries(store_engine, alert.id)
    assert d.state == "cancelled" and push_service.pushes() == []


def test_a_subscription_the_push_service_forgot_is_removed(
    http: TestClient,
    users: dict[str, AuthedUser],
    push_service: PushService,
    relay: Relay,
    store_engine: Engine,
) -> None:
    op = users["op"]
    gone, alive = push_service.endpoint("gone"), push_service.endpoint("alive")
    push_service.answers["/wpush/v2/gone"] = 410
    subscribe(http, op, Browser(), gone)
    subscribe(http, op, Browser(), alive)
    alert = raise_alert(store_engine, "cam-a", "e-1")
    drain(
        relay,
        lambda: (
            all(d.state != "queued" for d in deliveries(store_engine, alert.id))
            and len(deliveries(store_engine, alert.id)) == 2
        ),
    )
    states = sorted(d.state for d in deliveries(store_engine, alert.id))
    assert states == ["bounced", "sent"]
    assert [s["endpoint"] for s in http.get(SUBS, headers=op.headers).json()] == [alive]
    assert len(push_service.pushes("/wpush/v2/gone")) == 1  # no retries of a 410


def test_a_failing_push_service_is_retried_then_recorded(
    http: TestClient,
    users: dict[str, AuthedUser],
    push_service: PushService,
    relay: Relay,
    store_engine: Engine,
) -> None:
    op = users["op"]
    push_service.answers["/wpush/v2/flaky"] = 503
    subscribe(http, op, Browser(), push_service.endpoint("flaky"))
    alert = raise_alert(store_engine, "cam-a", "e-1")
    drain(relay, lambda: len(push_service.pushes()) >= 2)
    push_service.answers.pop("/wpush/v2/flaky")
    drain(relay, lambda: deliveries(store_engine, alert.id)[0].state == "sent")
    (sub,) = http.get(SUBS, headers=op.headers).json()
    assert sub["failures"] == 0 and sub["last_sent_at"] is not None


P256DH = Browser().subscription("x")["keys"]["p256dh"]
AUTH = Browser().subscription("x")["keys"]["auth"]


def body(**kw: Any) -> dict[str, Any]:
    keys = {"p256dh": P256DH, "auth": AUTH} | kw.pop("keys", {})
    return {"endpoint": "http://127.0.0.1:9/wpush/x", "keys": keys} | kw


@pytest.mark.parametrize(
    ("case", "sent"),
    [
        ("no keys", {"endpoint": "http://127.0.0.1:9/wpush/x"}),
        ("no endpoint", {"keys": {"p256dh": P256DH, "auth": AUTH}}),
        ("not a URL", body(endpoint="push-service/abc/def")),
        ("ftp", body(endpoint="ftp://127.0.0.1/wpush/x")),
        ("credentials", body(endpoint="https://u:p@push.example.com/x")),
        ("too long", body(endpoint="https://push.example.com/" + "a" * 2100)),
        ("private address", body(endpoint="https://10.1.2.3/wpush/x")),
        ("metadata address", body(endpoint="http://169.254.169.254/latest")),
        ("unresolvable", body(endpoint="https://push.invalid/x")),
        ("p256dh not base64url", body(keys={"p256dh": "+" * 87})),
        ("p256dh off the curve", body(keys={"p256dh": "BA" + "A" * 85})),
        ("p256dh compressed", body(keys={"p256dh": "Ag" + "A" * 84})),
        ("auth too short", body(keys={"auth": "AAAAAAAAAAAAAAAAAAAA"})),
        ("auth standard base64", body(keys={"auth": "ab+/" * 5 + "ab"})),
        ("an extra field", body(extra=1)),
        ("an extra key", body(keys={"x": "y"})),
    ],
)
def test_bad_subscriptions_answer_422(
    http: TestClient, users: dict[str, AuthedUser], case: str, sent: dict[str, Any]
) -> None:
    r = http.post(SUBS, json=sent, headers=users["op"].headers)
    assert r.status_code == 422, (case, r.text)
    assert http.get(SUBS, headers=users["op"].headers).json() == []


def test_subscriptions_belong_to_their_user(
    http: TestClient, users: dict[str, AuthedUser], push_service: PushService, services: Services
) -> None:
    op, op_a = users["op"], users["op_a"]
    mine = subscribe(http, op, Browser(), push_service.endpoint("op"))
    theirs = subscribe(http, op_a, Browser(), push_service.endpoint("op_a"))
    assert [s["id"] for s in http.get(SUBS, headers=op_a.headers).json()] == [theirs]
    assert http.delete(f"{SUBS}/{mine}", headers=op_a.headers).status_code == 404
    assert http.delete(f"{SUBS}/nope", headers=op_a.headers).status_code == 404
    assert http.post(SUBS, json=body(), headers=users["annotator"].headers).status_code == 403
    assert http.delete(f"{SUBS}/{mine}", headers=op.headers).status_code == 204
    assert http.get(SUBS, headers=op.headers).json() == []
    assert [s["id"] for s in http.get(SUBS, headers=op_a.headers).json()] == [theirs]
    # a deleted user's browsers are forgotten
    admin = add_user(services.security, "root", Role.ADMIN)
    assert http.delete(f"/api/v1/users/{op_a.id}", headers=admin.headers).status_code == 204
    assert PushRepository(services.engine).list() == []


def test_migration_0023_matches_the_model_and_downgrades(db_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from sentinel.store.db import alembic_config, make_engine, migrate
    from sentinel.store.push_tables import PUSH_SUBSCRIPTIONS

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0022")
            conn.commit()
        assert not sa.inspect(engine).has_table("push_subscriptions")
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: (
                    kind != "table" or name == PUSH_SUBSCRIPTIONS.name
                )
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0022")
            conn.commit()
        assert not sa.inspect(engine).has_table("push_subscriptions")
        assert sa.inspect(engine).has_table("privacy_requests")
    finally:
        engine.dispose()
