"""The notification API: subscriptions with camera scopes, templates (validated, versioned,
previewed), deliveries per alert, test sends to a real webhook receiver and SMTP server, the
signed SMS status callback and the signed media links."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import NotifyServices, Services
from sentinel.api.notify_delivery import twilio_signature
from sentinel.config import NotifySettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.notify.relay import make_senders
from sentinel.notify.signing import sign_link
from sentinel.store.notify_repo import NotifyRepository
from sentinel.store.objects import snapshot_key
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.notify_sinks import HttpSink, SmtpSink
from tests.utils.services import make_services

SUBS = "/api/v1/notifications/subscriptions"
TPLS = "/api/v1/notifications/templates"


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    s = HttpSink("webhook-secret")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    s = SmtpSink()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, sink: HttpSink, smtp: SmtpSink) -> Services:
    settings = NotifySettings(
        allow_http=True,
        allow_hosts=["127.0.0.1"],
        smtp={"port": smtp.port},
        sms={"base_url": sink.url, "account_sid": "AC1", "auth_token": "tok", "sender": "+1"},
        mqtt={"enabled": False},
        public_url="http://testserver",
    )
    notify = NotifyServices(
        settings, "webhook-secret", "link-secret", lambda: make_senders(settings, "webhook-secret")
    )
    return make_services(store_engine, tmp_path, notify=notify)


@pytest.fixture
def users(services: Services) -> dict[str, AuthedUser]:
    services.cameras.upsert("cam-a", {"id": "cam-a", "source": "/a.mp4"})
    services.cameras.upsert("cam-b", {"id": "cam-b", "source": "/b.mp4"})
    return {
        "admin": add_user(services.security, "root", Role.ADMIN),
        "operator": add_user(services.security, "op", Role.OPERATOR),
        "op_a": add_user(services.security, "op-a", Role.OPERATOR, cameras=["cam-a"]),
        "viewer": add_user(services.security, "viewer", Role.VIEWER),
    }


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with api_client(services) as c:
        yield c


def hook(sink: HttpSink, **kw: Any) -> dict[str, Any]:
    return {
        "name": "ops hook",
        "recipient": "ops",
        "channel": "webhook",
        "target": f"{sink.url}/hook",
        **kw,
    }


def test_subscriptions_crud_and_camera_scopes(
    http: TestClient, users: dict[str, AuthedUser], sink: HttpSink
) -> None:
    admin, op, op_a, viewer = (users[k].headers for k in ("admin", "operator", "op_a", "viewer"))
    r = http.post(SUBS, json=hook(sink), headers=op)
    assert r.status_code == 201, r.text
    every = r.json()
    assert every["id"].startswith("sub_") and every["created_by"]
    a_only = http.post(SUBS, json=hook(sink, cameras=["cam-a"]), headers=op_a)
    assert a_only.status_code == 201, a_only.text
    # a camera-limited operator may not subscribe to every camera, nor to camera B
    assert http.post(SUBS, json=hook(sink), headers=op_a).status_code == 403
    assert http.post(SUBS, json=hook(sink, cameras=["cam-b"]), headers=op_a).status_code == 403
    assert http.post(SUBS, json=hook(sink), headers=viewer).status_code == 403
    # and sees only its own camera's subscriptions
    seen = [s["id"] for s in http.get(SUBS, headers=op_a).json()]
    assert seen == [a_only.json()["id"]]
    assert http.get(f"{SUBS}/{every['id']}", headers=op_a).status_code == 404
    assert len(http.get(SUBS, headers=viewer).json()) == 2
    # replace, then delete
    sid = a_only.json()["id"]
    r = http.put(f"{SUBS}/{sid}", json=hook(sink, cameras=["cam-a"], labels=["car"]), headers=op_a)
    assert r.status_code == 200 and r.json()["labels"] == ["car"]
    assert http.delete(f"{SUBS}/{every['id']}", headers=op_a).status_code == 404
    assert http.delete(f"{SUBS}/{sid}", headers=op_a).status_code == 204
    assert http.get(f"{SUBS}/{sid}", headers=admin).status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8000/x",
        "http://[::1]/x",
        "ftp://example.com/",
    ],
)
def test_webhook_targets_pass_the_guard_when_saved(
    http: TestClient, users: dict[str, AuthedUser], target: str
) -> None:
    r = http.post(SUBS, json=hook(HttpSink(""), target=target), headers=users["admin"].headers)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list)


def test_templates_are_validated_versioned_and_previewed(
    http: TestClient, users: dict[str, AuthedUser]
) -> None:
    admin, op = users["admin"].headers, users["operator"].headers
    bad = {"name": "t", "subject": "{{ alert.label", "body": "{{ password }}"}
    r = http.post(TPLS, json=bad, headers=admin)
    assert r.status_code == 422
    msgs = [d["msg"] for d in r.json()["detail"]]
    assert any("syntax error" in m for m in msgs) and any("password" in m for m in msgs)
    good = {
        "name": "t",
        "subject": "{{ alert.label }} @ {{ alert.camera_id }}",
        "body": "{{ count }}",
    }
    assert http.post(TPLS, json=good, headers=op).status_code == 403
    r = http.post(TPLS, json=good, headers=admin)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    r = http.post(f"{TPLS}/{tid}/preview", json={"label": "car", "camera_id": "drive"}, headers=op)
    assert r.status_code == 200 and r.json() == {"subject": "car @ drive", "body": "1"}
    r = http.put(
        f"{TPLS}/{tid}", json={**good, "body": "n={{ count }}", "version": 1}, headers=admin
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    stale = http.put(f"{TPLS}/{tid}", json={**good, "version": 1}, headers=admin)
    assert stale.status_code == 409
    r = http.post(f"{TPLS}/{tid}/preview", json={"count": 3}, headers=op)
    assert r.json()["body"] == "n=3"
    # a subscription may only name an existing template
    missing = hook(HttpSink(""), template_id="tpl_nope")
    missing["target"] = "http://127.0.0.1:9/x"
    assert http.post(SUBS, json=missing, headers=admin).status_code == 422
    assert http.delete(f"{TPLS}/{tid}", headers=admin).status_code == 204
    assert http.get(f"{TPLS}/{tid}", headers=op).status_code == 404


def test_test_notifications_reach_real_receivers(
    http: TestClient, users: dict[str, AuthedUser], sink: HttpSink, smtp: SmtpSink
) -> None:
    admin = users["admin"].headers
    r = http.post(
        "/api/v1/notifications/test",
        json={"channel": "webhook", "target": f"{sink.url}/t"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["state"] == "delivered", r.text
    (got,) = sink.webhooks()
    assert got.verified and got.key.startswith("test-")
    r = http.post(
        "/api/v1/notifications/test",
        json={"channel": "email", "target": "bounce@example.com"},
        headers=admin,
    )
    assert r.json()["state"] == "bounced"
    r = http.post(
        "/api/v1/notifications/test",
        json={"channel": "email", "target": "me@example.com"},
        headers=admin,
    )
    assert r.json()["state"] == "delivered" and smtp.messages[-1]["To"] == "me@example.com"
    r = http.post(
        "/api/v1/notifications/test",
        json={"channel": "sms", "target": "+15550002"},
        headers=admin,
    )
    assert r.json()["state"] == "sent"
    deliveries = http.get("/api/v1/deliveries", params={"state": "sent"}, headers=admin).json()
    (sms,) = deliveries["items"]
    # the provider's status callback, signed as Twilio signs it
    form = {"MessageSid": sms["provider_id"], "MessageStatus": "delivered"}
    url = "http://testserver/api/v1/notifications/sms/status"
    bad = http.post(url, data=form, headers={"X-Twilio-Signature": "nope"})
    assert bad.status_code == 403
    sig = twilio_signature("tok", url, form)
    assert http.post(url, data=form, headers={"X-Twilio-Signature": sig}).status_code == 204
    states = {
        d["channel"] + ":" + d["state"]
        for d in http.get("/api/v1/deliveries", headers=admin).json()["items"]
    }
    assert states == {"webhook:delivered", "email:bounced", "email:delivered", "sms:delivered"}
    # operators may not send test notifications
    r = http.post(
        "/api/v1/notifications/test",
        json={"channel": "webhook", "target": f"{sink.url}/t"},
        headers=users["operator"].headers,
    )
    assert r.status_code == 403


def test_deliveries_per_alert_and_camera_scoped(
    http: TestClient, services: Services, users: dict[str, AuthedUser], store_engine: Engine
) -> None:
    d = AlertDecision(True, Severity.HIGH, "x", ("y",), "z", DecidedBy.RULES)
    alerts = services.agent.alerts
    a = alerts.record_rule_decision("ea", "cam-a", "person", d)
    b = alerts.record_rule_decision("eb", "cam-b", "person", d)
    repo = NotifyRepository(store_engine)
    for alert in (a, b):
        repo.insert_delivery(
            {
                "key": f"k-{alert.id}",
                "alert_id": alert.id,
                "camera_id": alert.camera_id,
                "recipient": "ops",
                "channel": "webhook",
                "target": "https://example.com/",
                "kind": "new",
            }
        )
    admin, op_a = users["admin"].headers, users["op_a"].headers
    page = http.get("/api/v1/deliveries", params={"alert_id": b.id}, headers=admin).json()
    assert [x["alert_id"] for x in page["items"]] == [b.id]
    mine = http.get("/api/v1/deliveries", headers=op_a).json()["items"]
    assert [x["alert_id"] for x in mine] == [a.id]
    assert (
        http.get("/api/v1/deliveries", params={"state": "nope"}, headers=admin).status_code == 422
    )
    one = http.get("/api/v1/deliveries", params={"limit": 1}, headers=admin).json()
    assert len(one["items"]) == 1 and one["next_cursor"]


def test_signed_media_links(http: TestClient, services: Services) -> None:
    start = datetime.now(UTC)
    ev = EventState(
        id="ev-media",
        camera_id="cam-a",
        label="person",
        track_id=1,
        started_at=start,
        last_seen_at=start,
        score=0.9,
        box=Box(1, 2, 30, 60),
        best_at=start,
    )
    key = snapshot_key("cam-a", ev.id)
    services.objects.put(key, b"\xff\xd8jpeg-bytes", "image/jpeg")
    services.events.upsert(ev, key)
    d = AlertDecision(True, Severity.HIGH, "x", ("y",), "z", DecidedBy.RULES)
    alert = services.agent.alerts.record_rule_decision(ev.id, "cam-a", "person", d)
    exp = int(time.time()) + 60
    good = sign_link("http://testserver", "link-secret", "snapshot", alert.id, exp)
    r = http.get(good)  # no bearer token: the signature is the authorisation
    assert r.status_code == 200 and r.content == b"\xff\xd8jpeg-bytes"
    clip = sign_link("http://testserver", "link-secret", "clip", alert.id, exp)
    assert http.get(clip).status_code == 404  # recording is not configured here
    assert http.get(good.replace("/snapshot/", "/clip/")).status_code == 403  # kind is signed
    url = sign_link("http://testserver", "link-secret", "snapshot", "nope", exp)
    assert http.get(url).status_code == 404  # valid link, no such alert
    assert http.get(url.replace("sig=", "sig=0")[:-1]).status_code == 403
    old = sign_link("http://testserver", "link-secret", "snapshot", "nope", int(time.time()) - 1)
    assert http.get(old).status_code == 403
    forged = sign_link("http://testserver", "other-secret", "snapshot", "nope", exp)
    assert http.get(forged).status_code == 403


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("json://169.254.169.254/latest", 422),
        ("jsons://10.0.0.1/x", 422),
        ("nonsense://x", 422),
        ("json://127.0.0.1:9/ok", 201),  # allowed host (notify.allow_hosts)
    ],
)
def test_apprise_targets_are_checked_when_saved(
    http: TestClient, users: dict[str, AuthedUser], target: str, status: int
) -> None:
    body = {"name": "a", "recipient": "r", "channel": "apprise", "target": target}
    r = http.post(SUBS, json=body, headers=users["admin"].headers)
    assert r.status_code == status, r.text


def test_the_save_time_check_resolves_names_through_the_guard(
    store_engine: Engine, tmp_path: Path
) -> None:
    """A name is judged by what it resolves to (here a fixed resolver: no DNS in tests)."""
    answers = {"public.test": ["93.184.215.14"], "internal.test": ["10.0.0.7"]}
    notify = NotifyServices(
        NotifySettings(),
        "w",
        "l",
        lambda: {},
        resolver=lambda host, port: answers[host],
    )
    services = make_services(store_engine, tmp_path, notify=notify)
    admin = add_user(services.security, "root", Role.ADMIN)
    body = {"name": "h", "recipient": "r", "channel": "webhook"}
    with api_client(services) as http:
        good = {**body, "target": "https://public.test/h"}
        ok = http.post(SUBS, json=good, headers=admin.headers)
        assert ok.status_code == 201, ok.text
        bad = http.post(
            SUBS, json={**body, "target": "https://internal.test/h"}, headers=admin.headers
        )
        assert bad.status_code == 422 and "private" in bad.text
