"""The outbox relay: plans deliveries from alert changes and sends them, at least once.

One ``tick``:

1. **plan**: lease outbox rows; for each, match the alert's change against the subscriptions
   and insert one delivery per (alert, recipient, channel, kind) — idempotent on its key — in
   the transaction that finishes the row. An escalation tier's delivery is due later and is
   cancelled if the alert is no longer open by then; a delivery inside its subscription's
   per-camera cooldown is ``held`` for the digest. In a subscription's quiet hours a new alert
   is ``held`` until they end (gathered into one digest per camera then) and an update or end
   is queued for their end, unless the alert's severity breaks through.
2. **digest**: held deliveries whose cooldown ended become one digest delivery each
   (subscription, camera).
3. **send**: lease due deliveries (one at a time per (alert, recipient, channel): a later
   message waits while an earlier one is pending or retrying, so ``update`` never overtakes
   ``new``), defer those whose subscription is in quiet hours now (a digest, an escalation
   or a retry that fell due in them), check rate limits (deferred, not failed, when over),
   render the template, send through the channel, and record the receipt — or retry with backoff and
   jitter, or fail for good. A relay that dies after sending and before recording sends again
   when the lease expires, with the same idempotency key: receivers dedupe on it.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sentinel.config import NotifySettings
from sentinel.notify.channels import DeliveryError, OutMessage, Sender
from sentinel.notify.policy import RateLimiter, backoff_s, idempotency_key
from sentinel.notify.push import PUSH_CHANNEL, PushDirectory, PushGone, PushSnapshot, push_message
from sentinel.notify.signing import sign_link
from sentinel.notify.subscriptions import (
    SEVERITY_RANK,
    AlertKind,
    AlertView,
    Subscription,
    cooldown_hold_until,
    escalation_due,
    matches,
    quiet_deferral,
)
from sentinel.notify.templates import DEFAULT_TEMPLATES, TemplateError, alert_context, render
from sentinel.notify.webpush import VapidKey
from sentinel.store.alert_repo import AlertRecord, AlertRepository
from sentinel.store.notify_repo import DeliveryRecord, NotifyRepository, OutboxItem
from sentinel.store.push_repo import PushRepository
from sentinel.store.repo import CameraRepository
from sentinel.store.security_repo import UserRepository

__all__ = [
    "VAPID_KEY_FILE",
    "Relay",
    "TickReport",
    "build_message",
    "load_or_create_secret",
    "vapid_of",
    "view_of",
]

Finished = tuple[str, str, str, str | None, str | None]
"""What ``NotifyRepository.finish_many`` records: id, token, state, provider id, error."""
Outcome = tuple[str, Finished | None]

logger = logging.getLogger(__name__)

VAPID_KEY_FILE = "keys/vapid.pem"


def load_or_create_secret(path: Path) -> str:
    """A secret kept in a file of the data dir, created on first use (mode 0600).

    Several processes (the notifier actor, the API's replicas) may start at once: the new
    secret is written to a private temporary file and linked into place, so exactly one
    candidate wins and everyone reads the same secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won
        finally:
            tmp.unlink()
    return path.read_text().strip()


def view_of(alert: AlertRecord, groups: tuple[str, ...] = ()) -> AlertView:
    return AlertView(
        id=alert.id,
        camera_id=alert.camera_id,
        label=alert.label,
        severity=alert.severity,
        summary=alert.summary,
        status=alert.status,
        created_at=alert.created_at,
        camera_groups=groups,
        rule_id=alert.rule_id,
        incident_type=None,
        incident_id=alert.incident_id,
        event_id=alert.event_id,
        reasons=alert.reasons,
        recommended_action=alert.recommended_action,
    )


@dataclass
class TickReport:
    planned: int = 0
    digests: int = 0
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def busy(self) -> bool:
        return bool(self.planned or self.digests or self.sent or self.delivered or self.retried)


def _frigate_object(alert: Mapping[str, Any], links: Mapping[str, str]) -> dict[str, Any]:
    """An alert in the shape of Frigate's event ``after``/``before`` objects."""
    created = datetime.fromisoformat(str(alert["created_at"]))
    ended = alert.get("acknowledged_at") or (
        alert.get("updated_at") if alert.get("status") == "withdrawn" else None
    )
    return {
        "id": alert["id"],
        "camera": alert["camera_id"],
        "label": alert["label"],
        "sub_label": None,
        "start_time": created.timestamp(),
        "end_time": None if not ended else datetime.fromisoformat(str(ended)).timestamp(),
        "has_snapshot": True,
        "has_clip": True,
        "severity": str(alert["severity"]),
        "summary": alert.get("summary", ""),
        "status": alert.get("status", "open"),
        "event_id": alert.get("event_id"),
        "incident_id": alert.get("incident_id"),
        "snapshot_url": links.get("snapshot_url"),
        "clip_url": links.get("clip_url"),
    }


def _review(kind: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    def item(obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": obj["id"],
            "camera": obj["camera"],
            "start_time": obj["start_time"],
            "end_time": obj["end_time"],
            "severity": "alert",
            "data": {
                "detections": [obj["event_id"]] if obj.get("event_id") else [],
                "objects": [obj["label"]],
                "sub_labels": [],
                "zones": [],
                "audio": [],
            },
        }

    return {"type": kind, "before": item(before), "after": item(after)}


def build_message(
    delivery: DeliveryRecord,
    alerts: list[AlertRecord],
    template: tuple[str, str],
    settings: NotifySettings,
    link_secret: str,
    now: float,
) -> OutMessage:
    """The rendered message of a delivery (``alerts``: its alert, or a digest's alerts)."""
    alert = alerts[-1]
    exp = int(now + settings.link_ttl_s)
    links = {
        "snapshot_url": sign_link(settings.public_url, link_secret, "snapshot", alert.id, exp),
        "clip_url": sign_link(settings.public_url, link_secret, "clip", alert.id, exp),
    }
    ctx: dict[str, Any] = {
        "alert": alert_context(view_of(alert)),
        "kind": delivery.kind,
        "alerts": [alert_context(view_of(a)) for a in alerts],
        "count": len(alerts),
        "recipient": delivery.recipient,
        "alert_url": f"{settings.public_url.rstrip('/')}/api/v1/alerts/{alert.id}",
        **links,
    }
    rendered = render(template[0], template[1], ctx)
    after_plain = json.loads(json.dumps(ctx["alert"]))
    after_plain["acknowledged_at"] = (
        alert.acknowledged_at.isoformat() if alert.acknowledged_at else None
    )
    after_plain["updated_at"] = alert.updated_at.isoformat()
    after = _frigate_object(after_plain, links)
    before = after
    if delivery.before:
        before = _frigate_object(json.loads(delivery.before), links)
    mqtt_type = "new" if delivery.kind in ("new", "digest", "test") else delivery.kind
    payload: dict[str, Any] = {
        "alert_id": alert.id,
        "camera_id": alert.camera_id,
        "severity": str(alert.severity),
        "count": len(alerts),
        "alert_ids": [a.id for a in alerts],
        **links,
    }
    if delivery.channel == "mqtt":
        event = {"type": mqtt_type, "before": before, "after": after, "id": delivery.key}
        payload = {"event": event, "review": _review(mqtt_type, before, after)}
    return OutMessage(
        key=delivery.key,
        recipient=delivery.recipient,
        target=delivery.target,
        kind=delivery.kind,
        subject=rendered.subject,
        body=rendered.body,
        payload=payload,
    )


class Relay:
    """The relay's steps over the store and the channels (no Ray; see the module docstring).

    Args:
        repo: The notifier's store.
        alerts: The alerts.
        cameras: The cameras (their groups, for subscriptions by group).
        senders: One sender per channel name; a channel without one fails its deliveries.
        limiter: Per-channel and per-recipient rate limits.
        settings: The notifier's settings.
        link_secret: Signs the snapshot and clip links.
        wall: The Unix time (links' expiry).
        push: The browsers' Web Push subscriptions; None: no pushes are planned.
    """

    def __init__(
        self,
        repo: NotifyRepository,
        alerts: AlertRepository,
        cameras: CameraRepository,
        senders: Mapping[str, Sender],
        limiter: RateLimiter,
        settings: NotifySettings,
        link_secret: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wall: Callable[[], float] = time.time,
        push: PushDirectory | None = None,
    ) -> None:
        self.repo = repo
        self.push = push
        self.alerts = alerts
        self.cameras = cameras
        self.senders = dict(senders)
        self.limiter = limiter
        self.settings = settings
        self.link_secret = link_secret
        self._clock = clock
        self._wall = wall
        self._pool = concurrent.futures.ThreadPoolExecutor(
            settings.workers, thread_name_prefix="notify-send"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for sender in self.senders.values():
            try:
                sender.close()
            except Exception:
                logger.exception("closing a sender failed")

    # -- plan --------------------------------------------------------------------------------

    def _subscriptions(self) -> list[tuple[str, Subscription]]:
        out = []
        for stored in self.repo.subscriptions():
            try:
                out.append((stored.id, Subscription(**stored.body)))
            except ValidationError:
                logger.warning("subscription %s is invalid and is skipped", stored.id)
        return out

    def _groups(self) -> dict[str, tuple[str, ...]]:
        return {cid: tuple(cfg.get("groups") or ()) for cid, cfg in self.cameras.list()}

    def plan_once(self, report: TickReport) -> None:
        items = self.repo.lease_outbox(self.settings.batch, self.settings.lease_s)
        if not items:
            return
        subs, groups = self._subscriptions(), self._groups()
        snap = self.push.snapshot() if self.push is not None else None
        last_sent: dict[tuple[str, str], datetime | None] = {}
        batch = [(item, self._plan(item, subs, groups, last_sent, snap)) for item in items]
        report.planned += self.repo.plan_many(batch)

    def _plan(
        self,
        item: OutboxItem,
        subs: list[tuple[str, Subscription]],
        groups: Mapping[str, tuple[str, ...]],
        last_sent: dict[tuple[str, str], datetime | None],
        snap: PushSnapshot | None = None,
    ) -> list[dict[str, Any]]:
        """The deliveries of one outbox row; ``last_sent`` carries the cooldowns' last sends
        across the batch (planned in one transaction, so the store does not see them yet)."""
        alert = self.alerts.get(item.alert_id)
        try:
            kind = AlertKind(item.kind)
        except ValueError:
            return []
        if alert is None:
            return []
        now = self._clock()
        view = view_of(alert, groups.get(alert.camera_id, ()))
        out = []
        for sub_id, sub in subs:
            if not matches(sub, view, kind, now):
                continue
            values: dict[str, Any] = {
                "key": idempotency_key(alert.id, sub.recipient, sub.channel, kind),
                "alert_id": alert.id,
                "camera_id": alert.camera_id,
                "subscription_id": sub_id,
                "recipient": sub.recipient,
                "channel": str(sub.channel),
                "target": sub.target,
                "kind": str(kind),
                "before": item.before,
            }
            due = escalation_due(sub, alert.created_at)
            quiet = quiet_deferral(sub, alert.severity, now)
            if due is not None:  # quiet hours at its due time are checked when it is sent
                values.update(due_at=max(due, now), requires_open=True)
            elif quiet is not None and kind is AlertKind.NEW:
                values.update(state="held", due_at=quiet)  # one digest when quiet hours end
            elif quiet is not None:
                values.update(due_at=quiet)
            elif kind is AlertKind.NEW and sub.cooldown_s > 0:
                slot = (sub_id, alert.camera_id)
                if slot not in last_sent:
                    last_sent[slot] = self.repo.last_sent_at(sub_id, alert.camera_id)
                hold = cooldown_hold_until(sub.cooldown_s, last_sent[slot], now)
                if hold is not None:
                    values.update(state="held", due_at=hold)
                else:
                    last_sent[slot] = now
            out.append(values)
        if self.push is not None and snap is not None:
            out.extend(self.push.plan(view, str(kind), snap))
        return out

    # -- digests -----------------------------------------------------------------------------

    def digest_once(self, report: TickReport) -> None:
        for sub_id, camera_id, held in self.repo.due_digests():
            first = held[0]
            key = idempotency_key(
                "digest:" + ",".join(d.alert_id for d in held), first.recipient, first.channel
            )
            values = {
                "key": key,
                "alert_id": held[-1].alert_id,
                "camera_id": camera_id,
                "subscription_id": sub_id,
                "recipient": first.recipient,
                "channel": first.channel,
                "target": first.target,
                "kind": "digest",
            }
            if self.repo.digest(held, values):
                report.digests += 1

    # -- send --------------------------------------------------------------------------------

    def _subscription_body(
        self, delivery: DeliveryRecord, cache: dict[str, Any]
    ) -> dict[str, Any] | None:
        if delivery.subscription_id is None:
            return None
        key = "sub:" + delivery.subscription_id
        if key not in cache:
            stored = self.repo.get_subscription(delivery.subscription_id)
            cache[key] = stored.body if stored else None
        body: dict[str, Any] | None = cache[key]
        return body

    def _quiet_until(
        self, delivery: DeliveryRecord, alerts: list[AlertRecord], cache: dict[str, Any]
    ) -> datetime | None:
        """The end of the delivery's subscription's quiet hours, if they hold it now (a
        digest, an escalation or a retry that fell due inside them)."""
        body = self._subscription_body(delivery, cache)
        if body is None or delivery.kind == "test" or not body.get("quiet_hours"):
            return None
        try:
            sub = Subscription(**body)
        except ValidationError:
            return None
        severity = max((a.severity for a in alerts), key=lambda s: SEVERITY_RANK[s])
        return quiet_deferral(sub, severity, self._clock())

    def _template(self, delivery: DeliveryRecord, cache: dict[str, Any]) -> tuple[str, str]:
        sub = self._subscription_body(delivery, cache)
        tid = (sub or {}).get("template_id")
        if tid:
            key = "tpl:" + tid
            if key not in cache:
                tpl = self.repo.get_template(tid)
                cache[key] = None if tpl is None else (tpl.subject, tpl.body)
            if cache[key] is not None:
                found: tuple[str, str] = cache[key]
                return found
        return DEFAULT_TEMPLATES["sms" if delivery.channel == "sms" else "default"]

    def send_one(self, d: DeliveryRecord, cache: dict[str, Any] | None = None) -> Outcome:
        """Sends one leased delivery. Returns its outcome and, when it reached a final state,
        what to record (``finish_many``); retries and deferrals are recorded here."""
        cache = {} if cache is None else cache
        token = d.lease_token or ""
        ids = d.digest_of or (d.alert_id,)
        alerts = [a for a in (self.alerts.get(i) for i in ids) if a is not None]
        if not alerts:
            return "failed", (d.id, token, "failed", None, "the alert no longer exists")
        if d.requires_open and alerts[-1].status != "open":
            return "cancelled", (d.id, token, "cancelled", None, f"alert {alerts[-1].status}")
        quiet = self._quiet_until(d, alerts, cache)
        if quiet is not None:
            self.repo.defer(d.id, token, max((quiet - self._clock()).total_seconds(), 0.0))
            return "deferred", None
        wait = self.limiter.wait_s(d.channel, d.recipient)
        if wait > 0:
            self.repo.defer(d.id, token, wait)
            return "deferred", None
        sender = self.senders.get(d.channel)
        if sender is None:
            return "failed", (d.id, token, "failed", None, f"channel {d.channel} not configured")
        if d.channel == PUSH_CHANNEL:
            return self._push_one(d, alerts[-1], sender, cache)
        s = self.settings
        try:
            msg = build_message(
                d, alerts, self._template(d, cache), s, self.link_secret, self._wall()
            )
            receipt = sender.send(msg)
        except TemplateError as exc:
            return "failed", (d.id, token, "failed", None, f"template: {exc}")
        except DeliveryError as exc:
            return self._failed(d, exc)
        except Exception as exc:  # a bug in a channel must not stop the relay
            return self._unexpected(d, exc)
        return receipt.state, (d.id, token, receipt.state, receipt.provider_id, None)

    def _push_one(
        self, d: DeliveryRecord, alert: AlertRecord, sender: Sender, cache: dict[str, Any]
    ) -> Outcome:
        """A Web Push: to the subscription's endpoint, if it still exists and its user may
        still see the camera; a push service that forgot the subscription deletes it."""
        token = d.lease_token or ""
        if self.push is None:
            return "failed", (d.id, token, "failed", None, "web push is not configured")
        subs = self.push.subscriptions
        if "groups" not in cache:
            cache["groups"] = self._groups()
        groups: tuple[str, ...] = cache["groups"].get(alert.camera_id, ())
        sub = self.push.target(d.subscription_id, alert.camera_id, groups)
        if sub is None:
            return "cancelled", (d.id, token, "cancelled", None, "the subscriber may not see it")
        msg = push_message(d.key, d.recipient, sub, view_of(alert, groups), d.kind)
        try:
            receipt = sender.send(msg)
        except PushGone as exc:
            subs.delete(sub.id)
            return "bounced", (d.id, token, "bounced", None, f"{exc}; subscription removed")
        except DeliveryError as exc:
            subs.record(sub.id, str(exc))
            return self._failed(d, exc)
        except Exception as exc:  # a bug in a channel must not stop the relay
            return self._unexpected(d, exc)
        subs.record(sub.id, None)
        return receipt.state, (d.id, token, receipt.state, receipt.provider_id, None)

    def _unexpected(self, d: DeliveryRecord, exc: Exception) -> Outcome:
        """A bug in a channel: logged, and the delivery retried with backoff."""
        logger.exception("delivery %s: unexpected error", d.id)
        s = self.settings
        delay = backoff_s(d.attempts, s.backoff_base_s, s.backoff_cap_s)
        self.repo.retry_later(d.id, d.lease_token or "", delay, f"{type(exc).__name__}: {exc}")
        return "retried", None

    def _failed(self, d: DeliveryRecord, exc: DeliveryError) -> Outcome:
        """Failed for good (permanent, or out of attempts), else retried with backoff."""
        s, token = self.settings, d.lease_token or ""
        if exc.permanent or d.attempts >= s.max_attempts:
            state = "bounced" if exc.bounced else "failed"
            return state, (d.id, token, state, None, str(exc)[:2000])
        delay = backoff_s(d.attempts, s.backoff_base_s, s.backoff_cap_s)
        self.repo.retry_later(d.id, token, delay, str(exc))
        return "retried", None

    def send_once(self, report: TickReport) -> None:
        batch = self.repo.lease_deliveries(self.settings.batch, self.settings.lease_s)
        if not batch:
            return
        # The store leases one message per (alert, recipient, channel) at a time; within the
        # batch, digests go first (a quiet night's digest before the updates of its alerts),
        # then the rest, in parallel across alerts and targets.
        cache: dict[str, Any] = {}
        finished: list[Finished] = []
        results: list[list[Outcome]] = []
        for phase in (
            [d for d in batch if d.kind == "digest"],
            [d for d in batch if d.kind != "digest"],
        ):
            groups: dict[tuple[str, str, str], list[DeliveryRecord]] = {}
            for d in phase:
                groups.setdefault((d.alert_id, d.channel, d.target), []).append(d)
            results.extend(self._pool.map(lambda g: self._send_group(g, cache), groups.values()))
        for outcomes in results:
            for outcome, record in outcomes:
                if record is not None:
                    finished.append(record)
                if outcome == "error":
                    report.errors.append("send failed")
                elif outcome == "bounced":
                    report.failed += 1
                elif hasattr(report, outcome):
                    setattr(report, outcome, getattr(report, outcome) + 1)
        # One transaction records the batch; a crash before it resends the batch (same keys).
        self.repo.finish_many(finished)

    def _send_group(self, group: list[DeliveryRecord], cache: dict[str, Any]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for d in group:
            try:
                outcomes.append(self.send_one(d, cache))
            except Exception:  # the store is down: the lease expires and it is sent again
                logger.exception("delivery %s could not be handled", d.id)
                outcomes.append(("error", None))
        return outcomes

    def tick(self) -> TickReport:
        """One round of planning, digests and sending."""
        report = TickReport()
        self.plan_once(report)
        self.digest_once(report)
        self.send_once(report)
        return report


def secrets_of(settings: NotifySettings, data_dir: Path) -> tuple[str, str]:
    """The webhook and link secrets: the settings', else ones kept in the data dir."""
    webhook = settings.webhook_secret or load_or_create_secret(data_dir / "notify-webhook.key")
    link = settings.link_secret or load_or_create_secret(data_dir / "notify-link.key")
    return webhook, link


def vapid_of(settings: NotifySettings, data_dir: Path) -> VapidKey | None:
    """The VAPID key of Web Push, kept in the data dir (made on first start), or None when
    pushes are off."""
    if not settings.push_enabled:
        return None
    return VapidKey.load_or_create(data_dir / VAPID_KEY_FILE)


def make_senders(
    settings: NotifySettings, webhook_secret: str, vapid: VapidKey | None = None
) -> dict[str, Sender]:
    """One sender per channel, from the settings (MQTT only when enabled, Web Push with a
    VAPID key)."""
    from sentinel.notify.channels import (
        AppriseChannel,
        EmailChannel,
        MqttChannel,
        SmsChannel,
        WebhookChannel,
    )
    from sentinel.notify.push import WebPushChannel
    from sentinel.notify.ssrf import GuardedClient, UrlPolicy

    policy = UrlPolicy(
        allow_http=settings.allow_http,
        allow_hosts=frozenset(h.lower() for h in settings.allow_hosts),
    )

    def client() -> GuardedClient:
        return GuardedClient(
            policy, timeout_s=settings.timeout_s, max_bytes=settings.max_response_bytes
        )

    callback = f"{settings.public_url.rstrip('/')}/api/v1/notifications/sms/status"
    senders: dict[str, Sender] = {
        "webhook": WebhookChannel(client(), webhook_secret),
        "email": EmailChannel(settings.smtp),
        "sms": SmsChannel(client(), settings.sms, callback),
        "apprise": AppriseChannel(policy),
    }
    if settings.mqtt.enabled:
        senders["mqtt"] = MqttChannel(settings.mqtt)
    if vapid is not None:
        senders[PUSH_CHANNEL] = WebPushChannel(
            client(), vapid, settings.push_subject, settings.push_ttl_s
        )
    return senders


def make_limiter(settings: NotifySettings, redis_url: str | None) -> RateLimiter:
    """Rate limits in Redis when ``redis_url`` is set, else in this process."""
    from sentinel.notify.policy import MemoryTokenBucket, RedisTokenBucket, TokenBucket

    buckets: TokenBucket = MemoryTokenBucket()
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        buckets = RedisTokenBucket(client)
    return RateLimiter(
        buckets,
        channel_rate=settings.channel_rate_per_s,
        channel_burst=settings.channel_burst,
        recipient_rate=settings.recipient_rate_per_s,
        recipient_burst=settings.recipient_burst,
    )


def make_relay(
    engine: Any, settings: NotifySettings, data_dir: Path, redis_url: str | None
) -> Relay:
    """The relay over a migrated database, with the channels and limits of ``settings``."""
    webhook_secret, link_secret = secrets_of(settings, data_dir)
    vapid = vapid_of(settings, data_dir)
    push = None
    if vapid is not None:
        push = PushDirectory(PushRepository(engine), UserRepository(engine))
    return Relay(
        NotifyRepository(engine),
        AlertRepository(engine),
        CameraRepository(engine),
        make_senders(settings, webhook_secret, vapid),
        make_limiter(settings, redis_url),
        settings,
        link_secret,
        push=push,
    )
