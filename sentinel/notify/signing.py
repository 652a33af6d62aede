"""Signatures: webhook bodies, and expiring links to snapshots and clips.

Webhooks carry ``X-Sentinel-Timestamp`` (Unix seconds) and ``X-Sentinel-Signature:
v1=<hex>``, the HMAC-SHA256 under the shared secret of ``f"{timestamp}.{body}"``. A receiver
recomputes it over the raw body, compares in constant time, and refuses a timestamp further
than ``REPLAY_WINDOW_S`` (300 s) from its clock; with the idempotency key that defeats replays.

Links in messages never carry a bearer token: ``/api/v1/notifications/media/<kind>/<alert_id>?exp=..
&sig=..`` with an HMAC over kind, alert and expiry, verified by ``verify_link``.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

__all__ = [
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign_link",
    "verify_link",
    "verify_webhook",
    "webhook_signature",
]

SIGNATURE_HEADER = "X-Sentinel-Signature"
TIMESTAMP_HEADER = "X-Sentinel-Timestamp"
IDEMPOTENCY_HEADER = "X-Sentinel-Idempotency-Key"
REPLAY_WINDOW_S = 300


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Sentinel-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float,
    window_s: float = REPLAY_WINDOW_S,
) -> bool:
    """What a receiver does: the timestamp is within the window and the signature matches."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > window_s:
        return False
    expected = webhook_signature(secret, ts, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def _link_mac(secret: str, kind: str, alert_id: str, exp: int) -> str:
    msg = f"{kind}\x1f{alert_id}\x1f{exp}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def sign_link(base_url: str, secret: str, kind: str, alert_id: str, expires_at: int) -> str:
    """A link to an alert's ``kind`` ("snapshot" or "clip") valid until ``expires_at``."""
    query = urlencode({"exp": expires_at, "sig": _link_mac(secret, kind, alert_id, expires_at)})
    return f"{base_url.rstrip('/')}/api/v1/notifications/media/{kind}/{alert_id}?{query}"


def verify_link(secret: str, kind: str, alert_id: str, exp: int, sig: str, now: float) -> bool:
    """Whether a link's signature is right and it has not expired."""
    if now > exp:
        return False
    expected = _link_mac(secret, kind, alert_id, exp).encode()
    return hmac.compare_digest(expected, sig.encode("utf-8", "replace"))
