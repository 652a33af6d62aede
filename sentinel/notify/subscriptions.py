"""Subscriptions: who gets what, when, and how often.

A subscription names one recipient and one channel (with its target: an address, a URL, a
phone number or an MQTT topic suffix) and filters alerts by camera or camera group, label,
minimum severity, rule and incident type. Its schedule defers it in quiet hours (local time of
its zone, on some days): what matches then waits for their end (``quiet_until``) unless its
severity breaks through (``quiet_bypass_severity``). Its cooldown holds a camera's further
alerts after one was sent, to send them later as one digest; its tier delays it until an alert
stayed unacknowledged that long (escalation).
"""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from sentinel.domain.alerts import Severity
from sentinel.domain.strict import StrictModel, TimeZoneName

__all__ = [
    "SEVERITY_RANK",
    "AlertKind",
    "AlertView",
    "Channel",
    "QuietHours",
    "Subscription",
    "cooldown_hold_until",
    "escalation_due",
    "in_quiet_hours",
    "matches",
    "new_subscription_id",
    "quiet_deferral",
    "quiet_until",
]

SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Name = Annotated[str, Field(min_length=1, max_length=64)]


class Channel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    SMS = "sms"
    MQTT = "mqtt"
    APPRISE = "apprise"


class AlertKind(StrEnum):
    """What happened to an alert (Frigate's ``type``): created, amended, ended (acknowledged)."""

    NEW = "new"
    UPDATE = "update"
    END = "end"


def new_subscription_id() -> str:
    return "sub_" + uuid.uuid4().hex[:16]


class QuietHours(StrictModel):
    """Local hours (``start`` to ``end``, across midnight when ``end`` < ``start``; the whole
    day when they are equal) on some days (empty: every day) during which a subscription's
    messages wait (see ``quiet_until``)."""

    start: time
    end: time
    days: list[str] = Field(default_factory=list, max_length=7)
    timezone: TimeZoneName = "UTC"

    @field_validator("days")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        bad = [d for d in days if d not in DAYS]
        if bad:
            raise ValueError(f"days must be among {', '.join(DAYS)}, but got {bad}")
        return days


class Subscription(StrictModel):
    """One recipient's wish to hear about some alerts on one channel."""

    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    recipient: str = Field(min_length=1, max_length=255, description="A person or system.")
    channel: Channel
    target: str = Field(
        min_length=1,
        max_length=2000,
        description="webhook: URL; email: address; sms: E.164 number; mqtt: topic prefix "
        "(- for the default); apprise: an Apprise URL (ntfy://, tgram://, slack://, json://…).",
    )
    cameras: list[Name] = Field(default_factory=list, max_length=256)
    camera_groups: list[Name] = Field(default_factory=list, max_length=64)
    labels: list[Name] = Field(default_factory=list, max_length=64)
    min_severity: Severity = Severity.INFO
    rule_ids: list[Name] = Field(default_factory=list, max_length=64)
    incident_types: list[Name] = Field(default_factory=list, max_length=64)
    kinds: list[AlertKind] = Field(
        default_factory=lambda: [AlertKind.NEW],
        min_length=1,
        max_length=3,
        description="Which changes to send (mqtt usually all three).",
    )
    quiet_hours: list[QuietHours] = Field(
        default_factory=list,
        max_length=16,
        description="Messages matching in these hours are deferred to their end (new alerts "
        "gathered into one digest per camera).",
    )
    quiet_bypass_severity: Severity | None = Field(
        None, description="Alerts at or above this severity are sent even in quiet hours."
    )
    cooldown_s: float = Field(
        0.0, ge=0, le=86400, description="After a send, hold the camera's alerts this long."
    )
    escalate_after_s: float = Field(
        0.0, ge=0, le=7 * 86400, description="Send only if still unacknowledged after this."
    )
    template_id: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _target(self) -> Subscription:
        t = self.target
        if self.channel is Channel.WEBHOOK and not t.startswith(("https://", "http://")):
            raise ValueError("a webhook target must be an http(s) URL")
        if self.channel is Channel.EMAIL and ("@" not in t or any(c in t for c in "\r\n ,")):
            raise ValueError("an email target must be one address")
        if self.channel is Channel.SMS and not (t.startswith("+") and t[1:].isdigit()):
            raise ValueError("an sms target must be an E.164 number (+ and digits)")
        if self.channel is Channel.MQTT and any(c in t for c in "#+\0"):
            raise ValueError("an mqtt target must be a topic prefix without wildcards")
        if self.channel is Channel.APPRISE and "://" not in t:
            raise ValueError("an apprise target must be an Apprise URL (scheme://...)")
        return self


@dataclass(frozen=True, slots=True)
class AlertView:
    """What matching and templates see of an alert."""

    id: str
    camera_id: str
    label: str
    severity: Severity
    summary: str
    status: str
    created_at: datetime
    camera_groups: tuple[str, ...] = ()
    rule_id: str | None = None
    incident_type: str | None = None
    incident_id: str | None = None
    event_id: str | None = None
    reasons: tuple[str, ...] = field(default=())
    recommended_action: str = ""


def _window_end(q: QuietHours, now: datetime) -> datetime | None:
    """The end (UTC) of ``q``'s window that ``now`` falls in, or None when it is outside."""
    tz = zoneinfo.ZoneInfo(q.timezone)
    local = now.astimezone(tz)
    t, today = local.time().replace(tzinfo=None), local.date()
    if q.start == q.end:  # a whole (local) day
        day, end = today, datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)
    elif q.start < q.end:
        if not q.start <= t < q.end:
            return None
        day, end = today, datetime.combine(today, q.end, tzinfo=tz)
    elif t >= q.start:  # across midnight, the evening part
        day, end = today, datetime.combine(today + timedelta(days=1), q.end, tzinfo=tz)
    elif t < q.end:  # across midnight: the morning part belongs to the previous day's window
        day, end = today - timedelta(days=1), datetime.combine(today, q.end, tzinfo=tz)
    else:
        return None
    if q.days and DAYS[day.weekday()] not in q.days:
        return None
    return end.astimezone(UTC)


def in_quiet_hours(rules: list[QuietHours], now: datetime) -> bool:
    """Whether ``now`` (tz-aware) falls in any of the quiet-hours windows."""
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    return any(_window_end(q, now) is not None for q in rules)


def quiet_until(rules: list[QuietHours], now: datetime, *, horizon: int = 16) -> datetime | None:
    """When the quiet hours ``now`` falls in end (UTC), following windows that touch or
    overlap; None when ``now`` is not quiet. After ``horizon`` chained windows (a schedule
    that is always quiet) the last end found is returned: the message is checked again then.
    """
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    at: datetime | None = None
    probe = now
    for _ in range(horizon):
        ends = [e for q in rules if (e := _window_end(q, probe)) is not None]
        if not ends:
            break
        at = probe = max(ends)
    return at


def quiet_deferral(sub: Subscription, severity: Severity, now: datetime) -> datetime | None:
    """Until when a message of ``sub`` about an alert of ``severity`` must wait at ``now``
    (the end of its quiet hours), or None to send it now."""
    bypass = sub.quiet_bypass_severity
    if bypass is not None and SEVERITY_RANK[severity] >= SEVERITY_RANK[bypass]:
        return None
    return quiet_until(sub.quiet_hours, now)


def matches(sub: Subscription, alert: AlertView, kind: AlertKind, now: datetime) -> bool:
    """Whether ``sub`` wants this change of ``alert`` (whenever: quiet hours only defer it,
    see ``quiet_deferral``). ``now`` is kept for schedules that filter rather than defer."""
    if not sub.enabled or kind not in sub.kinds:
        return False
    if sub.cameras or sub.camera_groups:
        in_groups = bool(set(sub.camera_groups) & set(alert.camera_groups))
        if alert.camera_id not in sub.cameras and not in_groups:
            return False
    if sub.labels and alert.label not in sub.labels:
        return False
    if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[sub.min_severity]:
        return False
    if sub.rule_ids and alert.rule_id not in sub.rule_ids:
        return False
    return not (sub.incident_types and alert.incident_type not in sub.incident_types)


def cooldown_hold_until(
    cooldown_s: float, last_sent_at: datetime | None, now: datetime
) -> datetime | None:
    """When a camera's alert may go out as a digest, if it falls in the cooldown after the
    last one sent to this subscription (``last_sent_at``); None: send it now."""
    if cooldown_s <= 0 or last_sent_at is None:
        return None
    until = last_sent_at + timedelta(seconds=cooldown_s)
    return until if now < until else None


def escalation_due(sub: Subscription, created_at: datetime) -> datetime | None:
    """When an escalation tier's delivery is due (it is cancelled if the alert is acknowledged
    by then); None for an immediate subscription."""
    if sub.escalate_after_s <= 0:
        return None
    return created_at + timedelta(seconds=sub.escalate_after_s)
