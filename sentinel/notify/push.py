"""Web Push as a notifier channel: who gets an alert's push, what it says, how it is sent.

Browsers subscribe through ``/api/v1/push/subscriptions`` (``sentinel.api.push``); the relay
(``sentinel.notify.relay``) plans one ``webpush`` delivery per subscription whose user may see
the alert (``PushDirectory.audience``: the user exists, is enabled, their role holds
``alerts:read`` and their camera limits include the alert's camera), for new alerts only, and
sends it like any other delivery (lease, retries with backoff, receipts). The user's rights
are checked again when the push is sent, so a user disabled or limited in between gets none.

A push carries only ``{title, body, alert_id, camera_id, url}`` (no link tokens: the dashboard
page it opens asks for a login). The push service's 404 or 410 means the browser dropped the
subscription: ``PushGone``, and the relay deletes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpcore

from sentinel.domain.alerts import Severity
from sentinel.gateway.roles import ALERTS_READ, ROLE_SCOPES, Principal, Role
from sentinel.notify.channels import DeliveryError, OutMessage, Receipt, _classify
from sentinel.notify.policy import idempotency_key
from sentinel.notify.ssrf import Blocked, GuardedClient
from sentinel.notify.subscriptions import SEVERITY_RANK, AlertView
from sentinel.notify.webpush import MAX_PAYLOAD, PushKeys, VapidKey, encrypt
from sentinel.store.push_repo import PushRepository, PushSubscriptionRecord
from sentinel.store.security_repo import UserRecord, UserRepository

__all__ = [
    "PUSH_CHANNEL",
    "PushDirectory",
    "PushGone",
    "PushSnapshot",
    "WebPushChannel",
    "push_message",
    "push_payload",
]

PUSH_CHANNEL = "webpush"
_BODY_MAX = 600
_HIGH = SEVERITY_RANK[Severity.HIGH]


class PushGone(DeliveryError):  # noqa: N818 - a DeliveryError named for what it means
    """The push service no longer knows the subscription (404/410): delete it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, bounced=True)


def may_see(user: UserRecord | None, camera_id: str, groups: tuple[str, ...]) -> bool:
    """Whether ``user`` may read alerts of ``camera_id`` (a member of ``groups``)."""
    if user is None or user.disabled:
        return False
    try:
        role = Role(user.role)
    except ValueError:
        return False
    if ALERTS_READ not in ROLE_SCOPES[role]:
        return False
    cameras = frozenset(user.cameras) if user.cameras is not None else None
    return Principal(user.id, "user", role, ROLE_SCOPES[role], cameras).can_see(camera_id, groups)


def push_payload(alert: AlertView) -> dict[str, Any]:
    """What the service worker shows: no secrets, no tokens, only the alert's own words."""
    body = alert.summary.strip() or f"{alert.label} on {alert.camera_id}"
    if len(body) > _BODY_MAX:
        body = body[: _BODY_MAX - 1] + "…"
    return {
        "title": f"{str(alert.severity).capitalize()} alert: {alert.label} on {alert.camera_id}",
        "body": body,
        "alert_id": alert.id,
        "camera_id": alert.camera_id,
        "url": f"/review?alert={quote(alert.id, safe='')}",
    }


def push_message(
    key: str, recipient: str, sub: PushSubscriptionRecord, alert: AlertView, kind: str
) -> OutMessage:
    """The message of one push: the target is the endpoint, the payload the keys and what
    the service worker shows (``push_payload``)."""
    return OutMessage(
        key=key,
        recipient=recipient,
        target=sub.endpoint,
        kind=kind,
        subject="",
        body="",
        payload={
            "keys": {"p256dh": sub.p256dh, "auth": sub.auth},
            "push": push_payload(alert),
            "urgency": "high" if SEVERITY_RANK[alert.severity] >= _HIGH else "normal",
        },
    )


@dataclass(frozen=True, slots=True)
class PushSnapshot:
    subscriptions: list[PushSubscriptionRecord]
    users: dict[str, UserRecord]


class PushDirectory:
    """The push subscriptions and their users' rights (see the module docstring)."""

    def __init__(self, subscriptions: PushRepository, users: UserRepository) -> None:
        self.subscriptions = subscriptions
        self.users = users

    def snapshot(self) -> PushSnapshot:
        """The subscriptions and their users now (one read per planning batch)."""
        subs = self.subscriptions.list()
        users = {u.id: u for u in self.users.list()} if subs else {}
        return PushSnapshot(subs, users)

    def plan(self, alert: AlertView, kind: str, snap: PushSnapshot) -> list[dict[str, Any]]:
        """The ``notify_deliveries`` values of an alert change's pushes: one per subscription
        whose user may see the alert's camera, for new alerts only."""
        if kind != "new":
            return []
        out = []
        for sub in snap.subscriptions:
            user = snap.users.get(sub.user_id)
            if user is None or not may_see(user, alert.camera_id, alert.camera_groups):
                continue
            out.append(
                {
                    "key": idempotency_key(alert.id, f"push:{sub.id}", PUSH_CHANNEL, kind),
                    "alert_id": alert.id,
                    "camera_id": alert.camera_id,
                    "subscription_id": sub.id,
                    # One stream per browser: a dead endpoint's retries never hold back the
                    # user's other browsers (deliveries are ordered per recipient and channel).
                    "recipient": f"{user.username}#{sub.id}"[:255],
                    "channel": PUSH_CHANNEL,
                    # The endpoint is its browser's capability: the deliveries list shows only
                    # the push service; the endpoint is read from the subscription when sending.
                    "target": _origin(sub.endpoint),
                    "kind": kind,
                }
            )
        return out

    def target(
        self, sub_id: str | None, camera_id: str, groups: tuple[str, ...]
    ) -> PushSubscriptionRecord | None:
        """The subscription of a delivery, if it still exists and its user may still see
        the camera."""
        sub = self.subscriptions.get(sub_id) if sub_id else None
        if sub is None or not may_see(self.users.get(sub.user_id), camera_id, groups):
            return None
        return sub


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


class WebPushChannel:
    """Encrypted pushes (RFC 8291) with VAPID (RFC 8292) through the outbound guard.

    The push service's 201 (any 2xx) is the receipt ("sent": it holds the message until the
    browser is online, for ``ttl_s`` at most); 404/410 is ``PushGone``; 413 and other 4xx but
    408/429 are permanent; the rest is retried.
    """

    def __init__(self, client: GuardedClient, vapid: VapidKey, subject: str, ttl_s: int) -> None:
        self.client = client
        self.vapid = vapid
        self.subject = subject
        self.ttl_s = ttl_s

    def send(self, msg: OutMessage) -> Receipt:
        keys = msg.payload.get("keys") or {}
        try:
            push_keys = PushKeys.of(str(keys.get("p256dh", "")), str(keys.get("auth", "")))
            data = json.dumps(msg.payload.get("push") or {}, separators=(",", ":")).encode()
            if len(data) > MAX_PAYLOAD:
                raise ValueError(f"the payload is {len(data)} bytes, over {MAX_PAYLOAD}")
            body = encrypt(data, push_keys)
            auth = self.vapid.authorization(msg.target, self.subject)
        except ValueError as exc:
            raise DeliveryError(f"webpush: {exc}", permanent=True) from exc
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Encoding": "aes128gcm",
            "TTL": str(self.ttl_s),
            "Urgency": str(msg.payload.get("urgency") or "normal"),
            "Authorization": auth,
        }
        try:
            answer = self.client.request("POST", msg.target, headers=headers, content=body)
        except Blocked as exc:
            raise DeliveryError(f"refused by the outbound guard: {exc}", permanent=True) from exc
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if answer.status in (404, 410):
            raise PushGone(f"the push service answered {answer.status}: subscription gone")
        _classify(answer.status, "the push service")
        return Receipt("sent", None, f"HTTP {answer.status}")

    def close(self) -> None:
        self.client.close()
