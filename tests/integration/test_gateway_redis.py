"""RedisRateLimiter against the real Redis at 127.0.0.1:6379, database 15.

Each test works under its own key prefix and deletes only that prefix afterwards. Redis being
unreachable fails the test: a skipped security test reads as a passed one in CI summaries.
The failover tests run their own redis-server, which they stop and start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sentinel.gateway.ratelimit import (
    BucketSpec,
    Decision,
    FailoverRateLimiter,
    LimiterUnavailableError,
    MemoryRateLimiter,
    RedisRateLimiter,
)
from tests.utils.redis_server import redis_server

REDIS_URL = "redis://127.0.0.1:6379/15"


@asynccontextmanager
async def redis_client(prefix: str, *, decode: bool = False) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=decode, socket_timeout=5)
    try:
        await client.ping()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        await client.aclose()
        pytest.fail(
            f"RedisRateLimiter tests need Redis at {REDIS_URL} and it is unreachable ({exc}). "
            "Start it, e.g. `redis-server --daemonize yes`, and rerun.",
            pytrace=False,
        )
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def run(scenario: Callable[[Redis, str], Awaitable[None]], *, decode: bool = False) -> None:
    prefix = f"sentinel:test:rl:{uuid.uuid4().hex}:"

    async def main() -> None:
        async with redis_client(prefix, decode=decode) as client:
            await scenario(client, prefix)

    asyncio.run(main())


async def until_allowed(limiter: RedisRateLimiter, key: str, spec: BucketSpec) -> Decision:
    """Retries as the limiter says (Retry-After), never on a guessed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        decision = await limiter.hit(key, spec)
        if decision.allowed:
            return decision
        assert loop.time() < deadline, f"still refused after 5 s: {decision}"
        await asyncio.sleep(decision.retry_after_s)


@pytest.mark.parametrize("decode", [False, True])
def test_burst_then_refused_with_retry_after(decode: bool) -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        limiter = RedisRateLimiter(client, prefix=prefix)
        spec = BucketSpec(rate_per_s=0.5, burst=3)
        decisions = [await limiter.hit("ip:203.0.113.5", spec) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [round(d.remaining) for d in decisions[:3]] == [2, 1, 0]
        refused = decisions[3]
        assert refused.remaining < 0.1
        assert 1.9 < refused.retry_after_s <= 2.0  # one token at 0.5/s, minus elapsed time

    run(scenario, decode=decode)


def test_refill_over_time() -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        limiter = RedisRateLimiter(client, prefix=prefix)
        spec = BucketSpec(rate_per_s=20, burst=1)
        assert (await limiter.hit("k", spec)).allowed
        refused = await limiter.hit("k", spec)
        assert not refused.allowed and 0 < refused.retry_after_s <= 0.05
        await until_allowed(limiter, "k", spec)

    run(scenario)


def test_bucket_key_expires_when_full_and_hides_the_raw_key() -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        limiter = RedisRateLimiter(client, prefix=prefix)
        spec = BucketSpec(rate_per_s=10, burst=5)
        await limiter.hit("login:alice@example.com", spec)
        stored = [k async for k in client.scan_iter(match=prefix + "*")]
        assert stored == [limiter.key_for("login:alice@example.com").encode()]
        assert b"alice" not in stored[0]
        ttl = await client.pttl(stored[0])
        assert 0 < ttl <= 100  # one token short of full at 10/s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while await client.exists(stored[0]):
            assert loop.time() < deadline, "bucket key did not expire"
            await asyncio.sleep(0.05)

    run(scenario)


def test_replicas_share_one_bucket() -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        async with redis_client(prefix) as other:
            a = RedisRateLimiter(client, prefix=prefix)
            b = RedisRateLimiter(other, prefix=prefix)
            spec = BucketSpec(rate_per_s=0.01, burst=2)
            assert (await a.hit("k", spec)).allowed
            assert (await b.hit("k", spec)).allowed
            assert not (await a.hit("k", spec)).allowed
            assert not (await b.hit("k", spec)).allowed

    run(scenario)


def test_concurrent_hits_are_atomic() -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        limiter = RedisRateLimiter(client, prefix=prefix)
        spec = BucketSpec(rate_per_s=0.001, burst=10)
        decisions = await asyncio.gather(*(limiter.hit("k", spec) for _ in range(50)))
        assert sum(d.allowed for d in decisions) == 10

    run(scenario)


def test_cost_and_independent_keys() -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        limiter = RedisRateLimiter(client, prefix=prefix)
        spec = BucketSpec(rate_per_s=0.01, burst=5)
        assert (await limiter.hit("a", spec, cost=5)).allowed
        assert not (await limiter.hit("a", spec, cost=1)).allowed
        assert (await limiter.hit("b", spec, cost=1)).allowed
        with pytest.raises(ValueError, match="cost"):
            await limiter.hit("a", spec, cost=6)

    run(scenario)


def test_falls_back_to_eval_when_the_script_is_not_cached() -> None:
    async def scenario(client: Redis, prefix: str) -> None:
        # A SHA the server has never seen stands in for a flushed script cache; flushing the
        # real cache would disturb everything else using this shared Redis.
        limiter = RedisRateLimiter(client, prefix=prefix)
        limiter._sha = "0" * 40
        decision = await limiter.hit("k", BucketSpec(rate_per_s=1, burst=2))
        assert decision.allowed and round(decision.remaining) == 1

    run(scenario)


def test_failover_meters_in_process_while_redis_is_down_then_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Against a private Redis the test stops and starts again (never the shared one)."""
    now = [0.0]

    def clock() -> float:
        return now[0]

    with redis_server(tmp_path) as server:

        async def main() -> None:
            client = Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
            shared = RedisRateLimiter(client)
            limiter = FailoverRateLimiter(shared, cooldown_s=5.0, clock=clock)
            spec = BucketSpec(rate_per_s=0.001, burst=2)
            key = shared.key_for("k")
            assert (await limiter.hit("k", spec)).allowed
            assert await client.exists(key) and not limiter.degraded

            server.stop()
            with pytest.raises(LimiterUnavailableError):
                await shared.hit("k", spec)
            decisions = [await limiter.hit("k", spec) for _ in range(3)]
            assert [d.allowed for d in decisions] == [True, True, False]  # still a limit
            assert limiter.degraded
            assert (limiter.failovers, limiter.fallback_hits) == (1, 3)

            server.start()  # empty: no persistence
            # Within the cooldown Redis is not asked: nothing is written there.
            assert not (await limiter.hit("k", spec)).allowed
            assert not await client.exists(key)
            now[0] += 5.0
            assert (await limiter.hit("k", spec)).allowed  # Redis again, its fresh bucket
            assert await client.exists(key)
            assert not limiter.degraded
            assert (limiter.failovers, limiter.fallback_hits) == (1, 4)
            await client.aclose()

        with caplog.at_level(logging.WARNING, logger="sentinel.gateway.ratelimit"):
            asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("rate limiter unavailable" in m for m in messages) == 1, messages
    assert sum("available again" in m for m in messages) == 1, messages


def test_failover_rejects_a_bad_cooldown() -> None:
    with pytest.raises(ValueError, match="cooldown_s"):
        FailoverRateLimiter(MemoryRateLimiter(), cooldown_s=float("nan"))
