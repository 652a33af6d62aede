"""Delivery policy: idempotency keys, the state machine, backoff with jitter, rate limits.

States: ``queued`` → ``sent`` (a provider took it, a receipt will follow: SMS) →
``delivered`` / ``failed`` / ``bounced``; ``queued`` → ``delivered`` directly when the channel's
answer is the receipt (webhook 2xx, SMTP accept, MQTT PUBACK); ``queued`` → ``held`` (cooldown,
waiting for its digest) → ``digested``; ``queued`` → ``cancelled`` (an escalation whose alert was
acknowledged in time) or ``failed`` (attempts exhausted, or a permanent refusal).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = [
    "STATES",
    "TERMINAL",
    "InvalidTransition",
    "MemoryTokenBucket",
    "RateLimiter",
    "RedisTokenBucket",
    "backoff_s",
    "check_transition",
    "idempotency_key",
]

logger = logging.getLogger(__name__)

STATES = ("queued", "held", "sent", "delivered", "failed", "bounced", "cancelled", "digested")
TERMINAL = frozenset({"delivered", "failed", "bounced", "cancelled", "digested"})
_NEXT: dict[str, frozenset[str]] = {
    "queued": frozenset({"queued", "sent", "delivered", "failed", "bounced", "cancelled", "held"}),
    "held": frozenset({"digested", "cancelled"}),
    "sent": frozenset({"delivered", "failed", "bounced"}),
}


class InvalidTransition(ValueError):  # noqa: N818 - a ValueError named for what it rejects
    """A delivery state change the state machine does not allow."""


def check_transition(current: str, new: str) -> None:
    """Raises InvalidTransition unless ``current`` → ``new`` is allowed."""
    if current not in STATES or new not in STATES:
        raise InvalidTransition(f"unknown state {current!r} or {new!r}")
    if new not in _NEXT.get(current, frozenset()):
        raise InvalidTransition(f"a delivery cannot go from {current} to {new}")


def idempotency_key(alert_id: str, recipient: str, channel: str, kind: str = "new") -> str:
    """The delivery's key: one per (alert, recipient, channel) and alert change kind.

    Receivers dedupe on it (``X-Sentinel-Idempotency-Key``, the email's ``Message-ID``, the
    MQTT payload's ``id``); the deliveries table is unique on it, so replanning an alert after
    a crash never makes a second delivery.
    """
    raw = "\x1f".join((alert_id, recipient, channel, kind)).encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def backoff_s(
    attempt: int, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1 failed so far):
    "full jitter", uniform in [0, min(cap, base * 2**(attempt-1))], but at least base/2."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 60))
    return max(base_s / 2, rng() * ceiling)


class TokenBucket(Protocol):
    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        """Takes one token from ``key``'s bucket: 0.0 if taken, else seconds until one is."""


class MemoryTokenBucket:
    """Token buckets in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        now = self._clock()
        with self._lock:
            tokens, at = self._state.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate_per_s)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / rate_per_s


# KEYS[1]: the bucket; ARGV: rate per second, burst, now (s). Returns "0" or the wait in s.
_LUA = """
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisTokenBucket:
    """Token buckets shared by every notifier process, in Redis (one Lua script per take).

    While Redis is unreachable it falls back to in-process buckets (logged once per outage), so
    a Redis outage slows nothing down and loses nothing; limits are then per process.
    """

    def __init__(self, client: Any, prefix: str = "sentinel:notify:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_LUA)
        self._fallback = MemoryTokenBucket()
        self._down = False

    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        try:
            wait = float(
                self._script(keys=[self._prefix + key], args=[rate_per_s, burst, time.time()])
            )
        except Exception as exc:
            if not self._down:
                logger.warning("rate limits fall back to this process (redis: %s)", exc)
            self._down = True
            return self._fallback.take(key, rate_per_s, burst)
        if self._down:
            logger.info("rate limits are back in redis")
        self._down = False
        return wait


class RateLimiter:
    """Per-channel and per-recipient limits over one bucket store."""

    def __init__(
        self,
        buckets: TokenBucket,
        *,
        channel_rate: float,
        channel_burst: int,
        recipient_rate: float,
        recipient_burst: int,
    ) -> None:
        self.buckets = buckets
        self.channel = (channel_rate, channel_burst)
        self.recipient = (recipient_rate, recipient_burst)

    def wait_s(self, channel: str, recipient: str) -> float:
        """0.0 if a message to ``recipient`` on ``channel`` may go now, else the wait (s).

        The recipient's bucket is asked first, so a refused recipient costs no channel token.
        """
        wait = self.buckets.take(f"r:{channel}:{recipient}", *self.recipient)
        if wait > 0:
            return wait
        return self.buckets.take(f"c:{channel}", *self.channel)
