"""A Redis outage through the API: never a 500.

The app's rate limits live in a private Redis this test starts and then stops (never the shared
one on 6379). While it is down the per-route buckets fail open to in-process ones (still a
limit, per replica; logged once and counted in /metrics) and sign-in fails closed with a 503
and Retry-After, as ``FailoverRateLimiter`` and ``auth._throttle_login`` explain why.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import Engine

from sentinel.gateway.ratelimit import RedisRateLimiter
from sentinel.gateway.roles import Role
from tests.utils.api import api_client
from tests.utils.auth import add_user, make_security
from tests.utils.redis_server import redis_server
from tests.utils.services import make_services


def _counter(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


def test_redis_outage_meters_in_process_and_refuses_sign_in(
    store_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path) as server:
        security = make_security(
            store_engine, tmp_path, redis_url=server.url, rate_per_s=0.01, rate_burst=3
        )
        assert isinstance(security.limiter, RedisRateLimiter)
        user = add_user(security, "night-shift", Role.OPERATOR)
        services = make_services(store_engine, tmp_path, security=security)
        h = user.headers
        login = {"username": user.username, "password": user.password}
        with api_client(services, raise_server_exceptions=False) as client:
            assert client.get("/api/v1/events", headers=h).status_code == 200
            store = redis.Redis.from_url(server.url)
            assert store.exists(security.limiter.key_for(f"{user.id}:events"))  # in Redis
            store.close()

            server.stop()
            with caplog.at_level(logging.WARNING):
                answers = [client.get("/api/v1/events", headers=h) for _ in range(4)]
                # A fresh in-process bucket per replica: the burst again, then the limit holds.
                assert [r.status_code for r in answers] == [200, 200, 200, 429], [
                    r.text for r in answers
                ]
                assert int(answers[-1].headers["Retry-After"]) >= 1

                refused = client.post("/api/v1/auth/token", data=login)
                assert refused.status_code == 503, refused.text
                assert "rate limiter" in refused.json()["detail"]
                assert int(refused.headers["Retry-After"]) >= 1

                metrics = client.get("/metrics", headers=h)
                assert metrics.status_code == 200, metrics.text
            failovers = [r for r in caplog.records if "rate limiter unavailable" in r.message]
            assert len(failovers) == 1, caplog.text  # once per outage, not once per request
            assert _counter(metrics.text, "sentinel_ratelimit_failovers_total") == 1
            # four /events and the /metrics request itself, metered in-process
            assert _counter(metrics.text, "sentinel_ratelimit_fallback_hits_total") == 5

            server.start()  # Redis is back: sign-in works again at once
            token = client.post("/api/v1/auth/token", data=login)
            assert token.status_code == 200, token.text

    outcomes = [r.outcome for r in security.audit.list(action="login", limit=10)[0]]
    assert outcomes[:2] == ["success", "unavailable"]
