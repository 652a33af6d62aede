"""Reliability of the notifier: a burst of alerts while the relay process is SIGKILLed and Redis
(its rate limits) is stopped; on PostgreSQL, with a real webhook receiver.

0 lost and 0 unexpected at the receiver, and every delivery recorded "delivered" exactly once
per idempotency key; duplicates that reached the receiver (a relay killed between sending and
recording) are counted and reported, and must be deduped by key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.db import make_engine, migrate
from sentinel.store.notify_repo import NotifyRepository
from tests.utils.notify_sinks import HttpSink
from tests.utils.redis_server import redis_server

BURST = int(os.environ.get("SENTINEL_NOTIFY_BURST", "10000"))  # the burst
SECRET = "burst-secret"


@pytest.fixture
def pg_engine(postgres_schema_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(postgres_schema_url)
    migrate(engine)
    yield postgres_schema_url, engine
    engine.dispose()


def start_relay(
    db_url: str, redis_url: str, sink: HttpSink, data_dir: Path
) -> subprocess.Popen[str]:
    settings = {
        "webhook_secret": SECRET,
        "link_secret": "l",
        "allow_http": True,
        "allow_hosts": ["127.0.0.1"],
        "lease_s": 2.0,
        "poll_interval_s": 0.05,
        "batch": 200,
        "backoff_base_s": 0.1,
        "backoff_cap_s": 1.0,
        "max_attempts": 100,
        "channel_rate_per_s": 100000,
        "channel_burst": 100000,
        "recipient_rate_per_s": 100000,
        "recipient_burst": 100000,
        "mqtt": {"enabled": False},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.utils.notify_relay_proc", db_url, redis_url,
         json.dumps(settings), str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.postgres
def test_burst_survives_relay_and_redis_kills(
    pg_engine: tuple[str, Engine], tmp_path: Path
) -> None:
    db_url, engine = pg_engine
    sink = HttpSink(SECRET)
    sink.start()
    repo = NotifyRepository(engine)
    repo.put_subscription(
        "hook",
        {"name": "hook", "recipient": "ops", "channel": "webhook", "target": f"{sink.url}/h"},
        "test",
        create=True,
    )
    alerts = AlertRepository(engine)
    decision = AlertDecision(True, Severity.HIGH, "burst", ("x",), "look", DecidedBy.RULES)
    written: list[str] = []

    def write() -> None:
        for i in range(BURST):
            written.append(
                alerts.record_rule_decision(f"e{i}", f"cam{i % 8}", "person", decision).id
            )

    relays: list[subprocess.Popen[str]] = []
    try:
        with redis_server(tmp_path) as redis:
            relays.append(start_relay(db_url, redis.url, sink, tmp_path))
            writer = threading.Thread(target=write)
            writer.start()
            t0 = time.monotonic()
            # Mid-burst: kill the relay hard, stop Redis, and a minute's worth of trouble later
            # (shortened) start a new relay while Redis is still down, then bring Redis back.
            deadline = time.monotonic() + 120
            while len(sink.keys()) < BURST // 4:
                assert time.monotonic() < deadline, "no progress before the kill"
                time.sleep(0.05)
            relays[0].kill()
            relays[0].wait()
            received_at_kill = len(sink.received)
            redis.stop()
            relays.append(start_relay(db_url, redis.url, sink, tmp_path))
            time.sleep(1.0)
            redis.start()
            writer.join()
            deadline = time.monotonic() + 300
            while len(sink.keys()) < BURST:
                assert time.monotonic() < deadline, f"only {len(sink.keys())} of {BURST} arrived"
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
            time.sleep(3.0)  # leases of the killed relay expire: nothing more may arrive
    finally:
        for proc in relays:
            proc.kill()
            proc.wait()
        sink.stop()

    keys = sink.keys()
    bodies = {json.loads(r.body)["alert_id"] for r in sink.webhooks()}
    duplicates = sum(n - 1 for n in keys.values())
    print(
        f"\nburst {BURST}: {len(keys)} unique, {duplicates} duplicates reached the receiver "
        f"(killed at {received_at_kill}), {elapsed:.1f} s"
    )
    assert len(written) == BURST
    assert bodies == set(written)  # 0 lost, 0 unexpected
    assert len(keys) == BURST  # one key per (alert, recipient, channel): dedupe is exact
    assert all(r.verified for r in sink.webhooks())
    assert duplicates <= 400  # at most the killed relay's in-flight batches (2 x 200)
    assert repo.state_counts() == {"delivered": BURST}
