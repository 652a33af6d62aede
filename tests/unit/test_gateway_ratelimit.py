"""The in-memory token bucket, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from sentinel.gateway.ratelimit import BucketSpec, Decision, MemoryRateLimiter, RateLimiter

SPEC = BucketSpec(rate_per_s=0.5, burst=3)  # one token every 2 s


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def hits(limiter: RateLimiter, key: str, n: int, spec: BucketSpec = SPEC) -> list[Decision]:
    async def go() -> list[Decision]:
        return [await limiter.hit(key, spec) for _ in range(n)]

    return asyncio.run(go())


def test_burst_then_refused_with_retry_after() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    decisions = hits(limiter, "ip:203.0.113.5", 5)
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3] == Decision(allowed=False, remaining=0.0, retry_after_s=2.0)


def test_refill_on_the_clock() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    hits(limiter, "k", 3)
    clock.t += 1.0
    refused = hits(limiter, "k", 1)[0]
    assert not refused.allowed
    assert refused.remaining == pytest.approx(0.5)
    assert refused.retry_after_s == pytest.approx(1.0)
    clock.t += 1.0
    assert hits(limiter, "k", 1)[0].allowed
    clock.t += 3600  # a long idle period refills to the burst, never beyond
    assert [d.allowed for d in hits(limiter, "k", 4)] == [True, True, True, False]


def test_refused_hits_take_nothing() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    hits(limiter, "k", 3 + 50)  # hammering while empty does not push the bucket into debt
    clock.t += 2.0
    assert hits(limiter, "k", 1)[0].allowed


def test_keys_are_independent() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    hits(limiter, "a", 3)
    assert hits(limiter, "a", 1)[0].allowed is False
    assert hits(limiter, "b", 1)[0].allowed is True


def test_cost() -> None:
    limiter = MemoryRateLimiter(clock=Clock())

    async def go() -> tuple[Decision, Decision]:
        return await limiter.hit("k", SPEC, cost=2), await limiter.hit("k", SPEC, cost=2)

    first, second = asyncio.run(go())
    assert first.allowed and first.remaining == 1
    assert not second.allowed and second.retry_after_s == pytest.approx(2.0)


@pytest.mark.parametrize("cost", [0, -1, 3.5, float("nan")])
def test_impossible_cost_is_a_programming_error(cost: float) -> None:
    with pytest.raises(ValueError, match="cost"):
        asyncio.run(MemoryRateLimiter().hit("k", SPEC, cost=cost))


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (float("nan"), 1), (float("inf"), 1)]
)
def test_bucket_spec_is_validated(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        BucketSpec(rate_per_s=rate, burst=burst)


def test_memory_is_bounded_under_a_key_flood() -> None:
    limiter = MemoryRateLimiter(clock=Clock(), max_keys=10)
    for i in range(1000):
        hits(limiter, f"ip:{i}", 1)
    assert len(limiter) == 10


def test_full_buckets_are_swept() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock, sweep_interval_s=60)
    for i in range(100):
        hits(limiter, f"idle:{i}", 1)
    hits(limiter, "busy", 3)
    assert len(limiter) == 101
    clock.t += 61  # idle buckets refilled (2 s per token); "busy" is hit again and kept
    hits(limiter, "busy", 3)
    assert len(limiter) == 1


def test_concurrent_hits_never_overspend() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    spec = BucketSpec(rate_per_s=0.001, burst=10)

    async def go() -> list[Decision]:
        return list(await asyncio.gather(*(limiter.hit("k", spec) for _ in range(100))))

    assert sum(d.allowed for d in asyncio.run(go())) == 10


def test_shrunk_spec_caps_stored_tokens() -> None:
    limiter = MemoryRateLimiter(clock=Clock())
    hits(limiter, "k", 1, BucketSpec(rate_per_s=1, burst=100))
    small = BucketSpec(rate_per_s=0.001, burst=2)
    assert [d.allowed for d in hits(limiter, "k", 3, small)] == [True, True, False]
