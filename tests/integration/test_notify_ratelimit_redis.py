"""Token buckets in a real (private) Redis: shared between limiters, and a Redis outage falls
back to in-process buckets without refusing or failing anything."""

from __future__ import annotations

from pathlib import Path

import redis

from sentinel.notify.policy import RateLimiter, RedisTokenBucket
from tests.utils.redis_server import redis_server


def test_buckets_are_shared_through_redis_and_survive_its_outage(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        clients = [redis.Redis.from_url(server.url, socket_timeout=0.5) for _ in range(2)]
        a, b = (RedisTokenBucket(c) for c in clients)
        assert [a.take("k", 0.001, 3) for _ in range(2)] == [0.0, 0.0]
        assert b.take("k", 0.001, 3) == 0.0  # the third token, taken by another process
        assert a.take("k", 0.001, 3) > 0 and b.take("k", 0.001, 3) > 0
        limiter = RateLimiter(
            b, channel_rate=1000.0, channel_burst=1000, recipient_rate=0.001, recipient_burst=1
        )
        assert limiter.wait_s("sms", "alice") == 0.0
        assert limiter.wait_s("sms", "alice") > 0
        server.stop()
        # Redis is down: in-process buckets take over (a fresh burst), nothing raises
        assert a.take("k", 0.001, 3) == 0.0
        assert limiter.wait_s("sms", "bob") == 0.0
        server.start()
        assert b.take("fresh", 0.001, 1) == 0.0
        assert a.take("fresh", 0.001, 1) > 0  # back in Redis: shared again
