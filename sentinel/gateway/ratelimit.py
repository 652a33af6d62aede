"""Token-bucket rate limiting, in memory (one process) or in Redis (shared by all replicas).

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request costs ``cost``
tokens and is refused when the bucket holds fewer. Refused requests take nothing, so a client
that backs off for ``retry_after_s`` is served on its next try.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

__all__ = [
    "BucketSpec",
    "Decision",
    "FailoverRateLimiter",
    "LimiterUnavailableError",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
]

logger = logging.getLogger(__name__)


class LimiterUnavailableError(Exception):
    """The limiter's shared store could not be asked (down, unreachable, timed out)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one hit.

    Attributes:
        allowed: Whether the request may proceed.
        remaining: Tokens left in the bucket after this hit.
        retry_after_s: When refused, seconds until the bucket holds enough tokens for this cost
            (one token for ordinary requests); 0 when allowed. Rounding up to whole seconds for
            a ``Retry-After`` header is the caller's job.
    """

    allowed: bool
    remaining: float
    retry_after_s: float


@dataclass(frozen=True)
class BucketSpec:
    """A bucket's shape: sustained ``rate_per_s`` with bursts of up to ``burst`` requests."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate_per_s must be finite and > 0, got {self.rate_per_s}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")


class RateLimiter(Protocol):
    """Anything that can meter requests per key."""

    async def hit(self, key: str, spec: BucketSpec, cost: float = 1.0) -> Decision:
        """Takes ``cost`` tokens from ``key``'s bucket if it holds them."""
        ...


def _check_cost(spec: BucketSpec, cost: float) -> None:
    # A cost above the burst could never be paid: every such request would be refused forever
    # with a misleading retry_after, so it is a programming error, not a rate decision.
    if not 0 < cost <= spec.burst:
        raise ValueError(f"cost must be in (0, burst={spec.burst}], got {cost}")


@dataclass
class _Bucket:
    tokens: float
    at: float
    rate: float
    burst: int

    def level(self, now: float) -> float:
        return min(float(self.burst), self.tokens + max(0.0, now - self.at) * self.rate)


class MemoryRateLimiter:
    """Token buckets in this process's memory.

    Memory stays bounded however many keys clients invent (one per source address, per
    username tried, ...): a bucket that has refilled completely carries no information, so a
    periodic sweep drops those, and past ``max_keys`` the least recently used bucket goes. That
    last step can forgive a partly drained bucket; the alternative, refusing new keys when full,
    would let one client flooding with made-up keys lock every newcomer out.

    Args:
        clock: Monotonic seconds; injectable for tests.
        max_keys: Most buckets kept at once.
        sweep_interval_s: How often full buckets are swept out.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        sweep_interval_s: float = 60.0,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self._clock = clock
        self._max_keys = max_keys
        self._sweep_interval = sweep_interval_s
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        # hit() never awaits, so coroutines on one event loop cannot interleave inside it; the
        # lock covers callers on other threads (thread pools, several loops). It is held for
        # microseconds, so taking it from a coroutine does not stall the loop.
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    async def hit(self, key: str, spec: BucketSpec, cost: float = 1.0) -> Decision:
        """Takes ``cost`` tokens from ``key``'s bucket if it holds them."""
        _check_cost(spec, cost)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            tokens = float(spec.burst) if bucket is None else bucket.level(now)
            tokens = min(tokens, float(spec.burst))  # the spec may have shrunk since last time
            if tokens >= cost:
                tokens -= cost
                decision = Decision(True, tokens, 0.0)
            else:
                decision = Decision(False, tokens, (cost - tokens) / spec.rate_per_s)
            self._buckets[key] = _Bucket(tokens, now, spec.rate_per_s, spec.burst)
            self._buckets.move_to_end(key)
            self._evict(now)
            return decision

    def _evict(self, now: float) -> None:
        if now - self._last_sweep >= self._sweep_interval:
            self._last_sweep = now
            full = [k for k, b in self._buckets.items() if b.level(now) >= b.burst]
            for k in full:
                del self._buckets[k]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


# KEYS[1] bucket; ARGV rate, burst, cost. Returns {allowed, tokens, retry_after}.
# The time comes from the Redis server (TIME), not from the replicas: they share one clock, so a
# replica with a skewed clock can neither refill buckets early nor starve them. Writing after a
# non-deterministic command needs effect replication, the default since Redis 5. Numbers go out
# as strings because Redis truncates Lua numbers in replies to integers, and "%.6f" keeps the
# microseconds that Lua's default "%.14g" would drop from a Unix timestamp.
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
elseif now > ts then
  tokens = tokens + (now - ts) * rate
end
if tokens > burst then tokens = burst end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
local ttl_ms = math.ceil((burst - tokens) / rate * 1000)
if ttl_ms > 0 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
             'ts', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
else
  redis.call('DEL', KEYS[1])
end
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry)}
"""
_LUA_SHA = hashlib.sha1(_LUA.encode("utf-8"), usedforsecurity=False).hexdigest()


class RedisRateLimiter:
    """Token buckets in Redis, updated atomically by one Lua script per hit.

    Every ingress replica sees the same buckets. A bucket's key expires when it would be full
    again, so idle clients cost no memory. Keys are stored as a SHA-256 of the caller's key:
    bucket names often contain client addresses or usernames, which have no business sitting
    in plain text in a cache, and hashing bounds their length.

    Redis errors (and socket errors) are raised as :class:`LimiterUnavailableError`. Whether to fail
    open or closed is the caller's decision: closed for login and token endpoints, where a
    limiter outage must not become a brute-force window; :class:`FailoverRateLimiter` for the rest.

    Args:
        client: An asyncio Redis client (``decode_responses`` either way).
        prefix: Namespace for this limiter's keys.
    """

    def __init__(self, client: Redis, prefix: str = "sentinel:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._sha = _LUA_SHA

    def key_for(self, key: str) -> str:
        """The Redis key that holds ``key``'s bucket."""
        return self._prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    async def hit(self, key: str, spec: BucketSpec, cost: float = 1.0) -> Decision:
        """Takes ``cost`` tokens from ``key``'s bucket if it holds them."""
        _check_cost(spec, cost)
        args = (self.key_for(key), repr(float(spec.rate_per_s)), spec.burst, repr(float(cost)))
        try:
            try:
                reply = await self._client.evalsha(self._sha, 1, *args)
            except NoScriptError:
                # First use on this server, or its script cache was flushed: EVAL sends the
                # source once, and Redis caches it for the EVALSHA calls that follow.
                reply = await self._client.eval(_LUA, 1, *args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailableError(f"rate-limit store: {exc}") from exc
        allowed, tokens, retry = reply
        return Decision(bool(int(allowed)), float(tokens), float(retry))


class FailoverRateLimiter:
    """A shared limiter, with in-process buckets standing in while it is unavailable.

    Fails open to a weaker limit, never to none: while the shared store (Redis) cannot be asked,
    each process meters with its own buckets, so the limit still holds per replica (N replicas
    allow N times the rate) and the API stays up. Meant for the per-route buckets of
    authenticated callers, which protect capacity rather than secrets; login throttles must not
    use it (fresh in-process buckets would forget an attacker's attempts and multiply them by
    the replicas), they fail closed on :class:`LimiterUnavailableError`.

    After a failure the shared store is left alone for ``cooldown_s``, so an outage costs one
    failed connection per cooldown rather than one per request; the switch is logged once per
    outage, and counted (``failovers``, ``fallback_hits``) for ``/metrics``.

    Args:
        shared: The limiter to use while it answers.
        fallback: The in-process limiter; a fresh :class:`MemoryRateLimiter` by default.
        cooldown_s: Seconds to meter in-process after a failure before asking ``shared`` again.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        shared: RateLimiter,
        fallback: RateLimiter | None = None,
        *,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (cooldown_s >= 0 and math.isfinite(cooldown_s)):
            raise ValueError(f"cooldown_s must be finite and >= 0, got {cooldown_s}")
        self.shared = shared
        self.fallback = fallback if fallback is not None else MemoryRateLimiter(clock=clock)
        self._cooldown = cooldown_s
        self._clock = clock
        self._retry_at: float | None = None  # None: the shared store is in use
        self.failovers = 0
        self.fallback_hits = 0

    @property
    def degraded(self) -> bool:
        """Whether the last hit was metered in-process."""
        return self._retry_at is not None

    async def hit(self, key: str, spec: BucketSpec, cost: float = 1.0) -> Decision:
        """Takes ``cost`` tokens from ``key``'s bucket, in the shared store if it answers."""
        if self._retry_at is None or self._clock() >= self._retry_at:
            try:
                decision = await self.shared.hit(key, spec, cost)
            except LimiterUnavailableError as exc:
                if self._retry_at is None:
                    self.failovers += 1
                    logger.warning(
                        "rate limiter unavailable (%s): metering in-process per replica until "
                        "it answers again",
                        exc,
                    )
                self._retry_at = self._clock() + self._cooldown
            else:
                if self._retry_at is not None:
                    logger.warning("rate limiter available again: metering in it")
                    self._retry_at = None
                return decision
        self.fallback_hits += 1
        return await self.fallback.hit(key, spec, cost)
