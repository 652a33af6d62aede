"""The demo's notifications: MQTT (Mosquitto on 127.0.0.1:1883) and a webhook, out of the box;
``sentinel notify listen`` receives and verifies the webhooks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sentinel.cli import _allow_webhook, _ensure_demo_subscriptions, _store
from sentinel.config import Settings
from sentinel.notify.channels import OutMessage, WebhookChannel
from sentinel.notify.relay import secrets_of
from sentinel.notify.ssrf import GuardedClient, UrlPolicy
from sentinel.store.notify_repo import NotifyRepository
from tests.utils.media import free_port


def test_demo_subscribes_mqtt_and_the_webhook(tmp_path: Path) -> None:
    settings = _allow_webhook(Settings(data_dir=tmp_path), "http://127.0.0.1:9000/hook")
    assert settings.notify.allow_http and "127.0.0.1" in settings.notify.allow_hosts
    _ensure_demo_subscriptions(settings, "http://127.0.0.1:9000/hook")
    _ensure_demo_subscriptions(settings, "http://127.0.0.1:9000/hook")  # idempotent
    subs = {s.id: s.body for s in NotifyRepository(_store(settings)).subscriptions()}
    assert set(subs) == {"demo-mqtt", "demo-webhook"}
    assert subs["demo-mqtt"]["kinds"] == ["new", "update", "end"]
    assert subs["demo-webhook"]["target"] == "http://127.0.0.1:9000/hook"


def test_notify_listen_verifies_signatures(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SENTINEL_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel.cli", "notify", "listen", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert "listening" in proc.stdout.readline()
        secret, _ = secrets_of(Settings(data_dir=tmp_path).notify, tmp_path)
        policy = UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}))
        msg = OutMessage("k1", "me", f"http://127.0.0.1:{port}/hook", "test", "s", "b")
        assert WebhookChannel(GuardedClient(policy), secret).send(msg).state == "delivered"
        r = httpx.post(f"http://127.0.0.1:{port}/hook", content=b"{}")  # unsigned
        assert r.status_code == 401
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("signed /hook")
        time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
