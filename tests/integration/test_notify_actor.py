"""The notifier actor of the running platform, killed in the middle of a burst of alerts:
Ray restarts it, it resumes from the outbox and the deliveries' leases, and the webhook
receiver gets every alert (duplicates, if any, carry the same idempotency key)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from sentinel.actors.notifier import NOTIFIER_NAME
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.db import make_engine
from sentinel.store.notify_repo import NotifyRepository
from tests.integration.conftest import Stack, wait_for
from tests.utils.notify_sinks import HttpSink

# Long enough to kill the actor mid-burst; the 10,000 burst with relay and Redis kills is
# test_notify_reliability.py's (SENTINEL_NOTIFY_ACTOR_BURST sets a longer one here).
BURST = int(os.environ.get("SENTINEL_NOTIFY_ACTOR_BURST", "300"))


def test_notifier_actor_killed_mid_burst(sentinel_stack: Stack) -> None:
    import ray

    settings = sentinel_stack.settings
    engine = make_engine(settings.db_url)
    secret_file = settings.data_dir / "notify-webhook.key"
    wait_for(secret_file.exists, what="the notifier's webhook secret")
    sink = HttpSink(secret_file.read_text().strip())
    sink.start()
    camera = "notify-burst"  # no real camera: the platform's own alerts do not match
    NotifyRepository(engine).put_subscription(
        "burst-hook",
        {
            "name": "burst",
            "recipient": "ops",
            "channel": "webhook",
            "target": f"{sink.url}/burst",
            "cameras": [camera],
        },
        "test",
        create=True,
    )
    alerts = AlertRepository(engine)
    decision = AlertDecision(True, Severity.HIGH, "burst", ("x",), "look", DecidedBy.RULES)
    written: list[str] = []

    def write() -> None:
        for i in range(BURST):
            written.append(alerts.record_rule_decision(f"burst-{i}", camera, "person", decision).id)

    actor = ray.get_actor(NOTIFIER_NAME, namespace=settings.namespace)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        wait_for(lambda: len(sink.keys()) >= BURST // 4, timeout=120, interval=0.05)
        ray.kill(actor, no_restart=False)  # Ray restarts it (max_restarts=-1)
        at_kill = len(sink.keys())
        writer.join()
        wait_for(lambda: len(sink.keys()) >= BURST, timeout=300, what="every alert delivered")
        time.sleep(4.0)  # the killed actor's leases (3 s) expire: nothing more may arrive
        restarted: Any = ray.get(
            ray.get_actor(NOTIFIER_NAME, namespace=settings.namespace).status.remote()
        )
    finally:
        sink.stop()
        engine.dispose()
    keys = sink.keys()
    duplicates = sum(n - 1 for n in keys.values())
    print(
        f"\nactor burst {BURST}: killed at {at_kill}, {duplicates} duplicates reached the receiver"
    )
    got = {json.loads(r.body)["alert_id"] for r in sink.webhooks()}
    assert got == set(written) and len(written) == BURST  # 0 lost, 0 unexpected
    assert len(keys) == BURST and all(r.verified for r in sink.webhooks())
    assert at_kill < BURST  # the kill happened mid-burst
    assert restarted["last_error"] == ""
