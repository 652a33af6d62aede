"""The notifier's pure core: matching, quiet hours, cooldown, escalation, keys, backoff,
token buckets, the state machine, templates and signatures."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from sentinel.domain.alerts import Severity
from sentinel.notify.policy import (
    InvalidTransition,
    MemoryTokenBucket,
    RateLimiter,
    backoff_s,
    check_transition,
    idempotency_key,
)
from sentinel.notify.signing import sign_link, verify_link, verify_webhook, webhook_signature
from sentinel.notify.subscriptions import (
    AlertKind,
    AlertView,
    QuietHours,
    Subscription,
    cooldown_hold_until,
    escalation_due,
    in_quiet_hours,
    matches,
    quiet_deferral,
    quiet_until,
)
from sentinel.notify.templates import DEFAULT_TEMPLATES, TemplateError, render, validate

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday


def alert(**kw: Any) -> AlertView:
    base: dict[str, Any] = dict(
        id="a1",
        camera_id="gate",
        label="person",
        severity=Severity.HIGH,
        summary="person at the gate",
        status="open",
        created_at=T0,
        camera_groups=("outside",),
        rule_id="r1",
        incident_type="intrusion",
    )
    base.update(kw)
    return AlertView(**base)


def sub(**kw: Any) -> Subscription:
    base: dict[str, Any] = dict(
        name="s", recipient="alice", channel="webhook", target="https://example.com/hook"
    )
    base.update(kw)
    return Subscription(**base)


@pytest.mark.parametrize(
    ("kw", "view", "kind", "expected"),
    [
        ({}, {}, AlertKind.NEW, True),
        ({}, {}, AlertKind.UPDATE, False),  # kinds default to new only
        ({"kinds": ["new", "update", "end"]}, {}, AlertKind.END, True),
        ({"enabled": False}, {}, AlertKind.NEW, False),
        ({"cameras": ["gate"]}, {}, AlertKind.NEW, True),
        ({"cameras": ["door"]}, {}, AlertKind.NEW, False),
        ({"camera_groups": ["outside"]}, {}, AlertKind.NEW, True),
        ({"camera_groups": ["inside"]}, {}, AlertKind.NEW, False),
        ({"cameras": ["door"], "camera_groups": ["outside"]}, {}, AlertKind.NEW, True),
        ({"labels": ["car"]}, {}, AlertKind.NEW, False),
        ({"labels": ["car", "person"]}, {}, AlertKind.NEW, True),
        ({"min_severity": "critical"}, {}, AlertKind.NEW, False),
        ({"min_severity": "high"}, {}, AlertKind.NEW, True),
        ({"min_severity": "medium"}, {"severity": Severity.LOW}, AlertKind.NEW, False),
        ({"rule_ids": ["r2"]}, {}, AlertKind.NEW, False),
        ({"rule_ids": ["r1"]}, {}, AlertKind.NEW, True),
        ({"incident_types": ["loitering"]}, {}, AlertKind.NEW, False),
        ({"incident_types": ["intrusion"]}, {}, AlertKind.NEW, True),
        # quiet hours defer a message (quiet_deferral), they no longer filter it out
        ({"quiet_hours": [{"start": "11:00", "end": "13:00"}]}, {}, AlertKind.NEW, True),
        ({"quiet_hours": [{"start": "13:00", "end": "14:00"}]}, {}, AlertKind.NEW, True),
    ],
)
def test_matching(
    kw: dict[str, Any], view: dict[str, Any], kind: AlertKind, expected: bool
) -> None:
    assert matches(sub(**kw), alert(**view), kind, T0) is expected


@pytest.mark.parametrize(
    ("start", "end", "days", "tz", "at", "quiet"),
    [
        ("22:00", "06:00", [], "UTC", "2026-12-07T23:30:00+00:00", True),
        ("22:00", "06:00", [], "UTC", "2026-12-07T05:59:00+00:00", True),
        ("22:00", "06:00", [], "UTC", "2026-12-07T06:00:00+00:00", False),
        ("22:00", "06:00", [], "UTC", "2026-12-07T21:59:00+00:00", False),
        # 23:30 UTC is 00:30 in Paris (winter): inside a window starting 22:00 local
        ("22:00", "06:00", [], "Europe/Paris", "2026-12-07T20:30:00+00:00", False),
        ("22:00", "06:00", [], "Europe/Paris", "2026-12-07T21:30:00+00:00", True),
        # the morning part belongs to the previous day's window: Saturday night into Sunday
        ("22:00", "06:00", ["sat"], "UTC", "2026-12-06T03:00:00+00:00", True),  # Sun 03:00
        ("22:00", "06:00", ["sat"], "UTC", "2026-12-07T03:00:00+00:00", False),  # Mon 03:00
        ("09:00", "17:00", ["mon", "tue"], "UTC", "2026-12-07T12:00:00+00:00", True),
        ("09:00", "17:00", ["sat"], "UTC", "2026-12-07T12:00:00+00:00", False),
        ("00:00", "00:00", ["mon"], "UTC", "2026-12-07T12:00:00+00:00", True),
    ],
)
def test_quiet_hours(start: str, end: str, days: list[str], tz: str, at: str, quiet: bool) -> None:
    q = QuietHours(
        start=time.fromisoformat(start), end=time.fromisoformat(end), days=days, timezone=tz
    )
    assert in_quiet_hours([q], datetime.fromisoformat(at)) is quiet


def _q(start: str, end: str, days: list[str] | None = None, tz: str = "UTC") -> QuietHours:
    return QuietHours(
        start=time.fromisoformat(start), end=time.fromisoformat(end), days=days or [], timezone=tz
    )


@pytest.mark.parametrize(
    ("windows", "at", "until"),
    [
        ([_q("22:00", "06:00")], "2026-12-07T23:30:00+00:00", "2026-12-08T06:00:00+00:00"),
        ([_q("22:00", "06:00")], "2026-12-08T05:59:00+00:00", "2026-12-08T06:00:00+00:00"),
        ([_q("22:00", "06:00")], "2026-12-08T06:00:00+00:00", None),
        ([_q("09:00", "17:00")], "2026-12-07T12:00:00+00:00", "2026-12-07T17:00:00+00:00"),
        # local time: 22:00-06:00 in Paris (UTC+1 in winter) ends at 05:00 UTC
        (
            [_q("22:00", "06:00", tz="Europe/Paris")],
            "2026-12-07T22:30:00+00:00",
            "2026-12-08T05:00:00+00:00",
        ),
        # touching windows chain: 22-06 then 06-08 ends at 08:00
        (
            [_q("22:00", "06:00"), _q("06:00", "08:00")],
            "2026-12-07T23:00:00+00:00",
            "2026-12-08T08:00:00+00:00",
        ),
        # a whole Saturday and Sunday: from Saturday noon to Monday 00:00
        (
            [_q("00:00", "00:00", ["sat", "sun"])],
            "2026-12-05T12:00:00+00:00",
            "2026-12-07T00:00:00+00:00",
        ),
        # Friday night's window (days=fri) holds Saturday morning too
        (
            [_q("23:00", "07:00", ["fri"])],
            "2026-12-05T03:00:00+00:00",
            "2026-12-05T07:00:00+00:00",
        ),
        ([_q("23:00", "07:00", ["sat"])], "2026-12-05T03:00:00+00:00", None),
    ],
)
def test_quiet_until(windows: list[QuietHours], at: str, until: str | None) -> None:
    found = quiet_until(windows, datetime.fromisoformat(at))
    assert found == (None if until is None else datetime.fromisoformat(until))


def test_always_quiet_is_bounded() -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    found = quiet_until([_q("00:00", "00:00")], at)
    assert found is not None and at < found <= at + timedelta(days=17)


@pytest.mark.parametrize(
    ("bypass", "severity", "deferred"),
    [
        (None, Severity.CRITICAL, True),
        ("critical", Severity.HIGH, True),
        ("critical", Severity.CRITICAL, False),
        ("high", Severity.HIGH, False),
        ("high", Severity.CRITICAL, False),
    ],
)
def test_quiet_deferral_and_its_bypass(
    bypass: str | None, severity: Severity, deferred: bool
) -> None:
    s = sub(
        quiet_hours=[{"start": "11:00", "end": "13:00"}],
        **({"quiet_bypass_severity": bypass} if bypass else {}),
    )
    found = quiet_deferral(s, severity, T0)
    assert found == (datetime(2026, 12, 7, 13, 0, tzinfo=UTC) if deferred else None)
    assert quiet_deferral(s, severity, T0 + timedelta(hours=2)) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"channel": "webhook", "target": "ftp://x"},
        {"channel": "email", "target": "no-at-sign"},
        {"channel": "email", "target": "a@b.c\r\nBcc: x@y.z"},
        {"channel": "sms", "target": "0612345678"},
        {"channel": "mqtt", "target": "home/#"},
        {"quiet_hours": [{"start": "1:00", "end": "2:00", "timezone": "Mars/Olympus"}]},
        {"quiet_hours": [{"start": "01:00", "end": "02:00", "days": ["funday"]}]},
        {"surprise": 1},
    ],
)
def test_subscription_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        sub(**bad)


def test_cooldown_and_escalation() -> None:
    assert cooldown_hold_until(0, T0, T0) is None
    assert cooldown_hold_until(60, None, T0) is None
    assert cooldown_hold_until(60, T0, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=60)
    assert cooldown_hold_until(60, T0, T0 + timedelta(seconds=61)) is None
    assert escalation_due(sub(), T0) is None
    assert escalation_due(sub(escalate_after_s=600), T0) == T0 + timedelta(minutes=10)


def test_idempotency_keys() -> None:
    k = idempotency_key("a1", "alice", "webhook")
    assert k == idempotency_key("a1", "alice", "webhook", "new")
    others = {
        idempotency_key("a2", "alice", "webhook"),
        idempotency_key("a1", "bob", "webhook"),
        idempotency_key("a1", "alice", "email"),
        idempotency_key("a1", "alice", "webhook", "end"),
        idempotency_key("a1al", "ice", "webhook"),  # no ambiguity from concatenation
    }
    assert k not in others and len(others) == 5


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (3, 0.5, 2.0),
        (10, 1.0, 30.0),
        (10, 0.0, 0.5),
        (200, 1.0, 30.0),
    ],
)
def test_backoff_full_jitter(attempt: int, rand: float, expected: float) -> None:
    assert backoff_s(attempt, 1.0, 30.0, rng=lambda: rand) == pytest.approx(expected)


def test_backoff_spreads() -> None:
    values = {round(backoff_s(6, 1.0, 300.0), 3) for _ in range(50)}
    assert len(values) > 40 and all(0.5 <= v <= 32.0 for v in values)
    with pytest.raises(ValueError):
        backoff_s(0, 1.0, 1.0)


def test_token_bucket() -> None:
    now = [0.0]
    bucket = MemoryTokenBucket(clock=lambda: now[0])
    assert [bucket.take("k", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("k", 2.0, 3) == pytest.approx(0.5)
    assert bucket.take("other", 2.0, 3) == 0.0  # buckets are per key
    now[0] = 0.5
    assert bucket.take("k", 2.0, 3) == 0.0
    assert bucket.take("k", 2.0, 3) > 0
    now[0] = 100.0  # refills up to the burst only
    assert [bucket.take("k", 2.0, 3) for _ in range(4)][-1] > 0


def test_rate_limiter_recipient_before_channel() -> None:
    limiter = RateLimiter(
        MemoryTokenBucket(clock=lambda: 0.0),
        channel_rate=1.0,
        channel_burst=3,
        recipient_rate=1.0,
        recipient_burst=1,
    )
    assert limiter.wait_s("sms", "alice") == 0.0
    assert limiter.wait_s("sms", "alice") > 0  # alice's bucket is empty; no channel token used
    assert limiter.wait_s("sms", "bob") == 0.0
    assert limiter.wait_s("sms", "carol") == 0.0
    assert limiter.wait_s("sms", "dave") > 0  # the channel's three are gone


@pytest.mark.parametrize(
    ("a", "b", "ok"),
    [
        ("queued", "sent", True),
        ("queued", "delivered", True),
        ("queued", "held", True),
        ("sent", "delivered", True),
        ("sent", "bounced", True),
        ("held", "digested", True),
        ("delivered", "queued", False),
        ("failed", "sent", False),
        ("sent", "queued", False),
        ("held", "sent", False),
        ("queued", "nope", False),
    ],
)
def test_state_machine(a: str, b: str, ok: bool) -> None:
    if ok:
        check_transition(a, b)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(a, b)


@pytest.mark.parametrize(
    ("subject", "body", "problem"),
    [
        ("{{ alert.label }}", "{{ alert.summary", "syntax error"),
        ("{{ secret_key }}", "ok", "unknown variables secret_key"),
        ("ok", "{% for x in alerts %}{{ y }}{% endfor %}", "unknown variables y"),
        ("{% if %}", "ok", "subject: syntax error"),
    ],
)
def test_template_validation(subject: str, body: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        validate(subject, body)


def test_templates_render_sandboxed_and_strict() -> None:
    for subject, body in DEFAULT_TEMPLATES.values():
        validate(subject, body)
    ctx = {"alert": {"label": "person", "camera_id": "gate"}, "count": 1}
    assert (
        render("{{ alert.label }} at {{ alert.camera_id }}", "x", ctx).subject == "person at gate"
    )
    with pytest.raises(TemplateError, match="Undefined"):
        render("{{ alert.nothing }}", "", ctx)
    with pytest.raises(TemplateError, match="SecurityError"):  # the sandbox refuses internals
        render("{{ alert.__class__.__mro__ }}", "", ctx)
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__subclasses__() }}", "", ctx)
    # header injection through the subject is flattened to one line
    assert "\n" not in render("a\nBcc: x@y.z", "", ctx).subject


def test_webhook_signature_and_replay_window() -> None:
    body = b'{"id":"k"}'
    sig = webhook_signature("s3cret", 1000, body)
    assert sig.startswith("v1=")
    assert verify_webhook("s3cret", "1000", sig, body, now=1100)
    assert not verify_webhook("s3cret", "1000", sig, body, now=1301)  # past the window
    assert not verify_webhook("s3cret", "1001", sig, body, now=1100)  # timestamp is signed
    assert not verify_webhook("other", "1000", sig, body, now=1100)
    assert not verify_webhook("s3cret", "1000", sig, body + b" ", now=1100)
    assert not verify_webhook("s3cret", "x", sig, body, now=1100)
    assert not verify_webhook("s3cret", "1000", "v1=é" + sig[4:], body, now=1100)  # no raise


def test_signed_links_expire_and_bind_their_target() -> None:
    url = sign_link("http://h:8000/", "k", "snapshot", "a1", 2000)
    assert url.startswith("http://h:8000/api/v1/notifications/media/snapshot/a1?exp=2000&sig=")
    sig = url.rsplit("sig=", 1)[1]
    assert "token" not in url and "Bearer" not in url
    assert verify_link("k", "snapshot", "a1", 2000, sig, now=1999)
    assert not verify_link("k", "snapshot", "a1", 2000, sig, now=2001)
    assert not verify_link("k", "clip", "a1", 2000, sig, now=1999)
    assert not verify_link("k", "snapshot", "a2", 2000, sig, now=1999)
    assert not verify_link("k", "snapshot", "a1", 3000, sig, now=1999)
    assert not verify_link("k", "snapshot", "a1", 2000, "é" * 64, now=1999)  # no raise
