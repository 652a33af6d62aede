"""The demo's notifications: MQTT (Mosquitto on 127.0.0.1:1883) and a webhook, out of the box;
``sentinel notify listen`` receives and verifies the webhooks, ``mosquitto_sub`` watches MQTT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from sentinel import cli
from sentinel.cli import _allow_webhook, _ensure_demo_subscriptions, _store
from sentinel.config import NotifySettings, Settings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.notify.channels import OutMessage, WebhookChannel
from sentinel.notify.relay import make_relay, secrets_of
from sentinel.notify.ssrf import GuardedClient, UrlPolicy
from sentinel.platform import runtime_of
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.db import make_engine
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


class _Lines:
    """Collects a subprocess's stdout lines in a thread (readline would block the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.proc = proc
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(
            target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True
        ).start()

    def wait_for(
        self, found: Callable[[list[str]], bool], what: str, timeout: float = 20.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not found(list(self.lines)):
            assert time.monotonic() < deadline, f"{what}: got {self.lines[-20:]}"
            time.sleep(0.05)


def test_demo_notifies_mosquitto_sub_and_a_webhook_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sentinel demo` with SENTINEL_DEMO_WEBHOOK, as far as its settings and subscriptions;
    then the relay the notifier actor would run on them (``runtime_of``): an alert reaches
    the README's `mosquitto_sub -h 127.0.0.1 -t 'sentinel/#' -v` on the real Mosquitto and
    `sentinel notify listen` as a signed POST. Bounded: nothing of the demo is left running."""
    port = free_port()
    env = {**os.environ, "SENTINEL_DATA_DIR": str(tmp_path)}
    listen = subprocess.Popen(
        [sys.executable, "-m", "sentinel.cli", "notify", "listen", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    watch = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-t", "sentinel/#", "-v"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        hooks, mqtt = _Lines(listen), _Lines(watch)
        hooks.wait_for(lambda ls: any("listening" in line for line in ls), "notify listen")
        probe = f"probe-{uuid.uuid4().hex}"  # mosquitto_sub is subscribed once it sees this
        deadline = time.monotonic() + 20
        while not any(probe in line for line in mqtt.lines):
            assert time.monotonic() < deadline, "mosquitto_sub never subscribed"
            subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-t", f"sentinel/{probe}", "-m", "{}"],
                check=True,
                timeout=10,
            )
            time.sleep(0.2)

        captured: list[Settings] = []
        monkeypatch.setattr(cli, "_run_until_signal", captured.append)
        url = f"http://127.0.0.1:{port}/hook"
        result = CliRunner().invoke(
            cli.main,
            ["demo"],
            env={"SENTINEL_DATA_DIR": str(tmp_path), "SENTINEL_DEMO_WEBHOOK": url},
        )
        assert result.exit_code == 0, result.output
        assert "mosquitto_sub -h 127.0.0.1 -t 'sentinel/#' -v" in result.output
        assert f"alerts are POSTed to {url}" in result.output
        (settings,) = captured

        runtime = runtime_of(settings)  # what the notifier actor is given
        engine = make_engine(runtime["db_url"])
        relay = make_relay(
            engine, NotifySettings(**runtime["notify"]), Path(runtime["data_dir"]), None
        )
        try:
            decision = AlertDecision(
                True, Severity.HIGH, "person on the footpath", ("person",), "", DecidedBy.RULES
            )
            alert = AlertRepository(engine).record_rule_decision("e1", "demo", "person", decision)
            deadline = time.monotonic() + 30
            while not (
                any(alert.id in line and "sentinel/events" in line for line in mqtt.lines)
                and any(line.startswith("signed /hook") for line in hooks.lines)
            ):
                assert time.monotonic() < deadline, (mqtt.lines[-5:], hooks.lines[-5:])
                relay.tick()
                time.sleep(0.05)
        finally:
            relay.close()
            engine.dispose()
        (event_line,) = [line for line in mqtt.lines if line.startswith("sentinel/events ")]
        event = json.loads(event_line.split(" ", 1)[1])
        assert event["type"] == "new" and event["after"]["camera"] == "demo"
        assert any(line.startswith("sentinel/reviews ") for line in mqtt.lines)
        assert not any("BAD SIGNATURE" in line for line in hooks.lines)
        hooks.wait_for(lambda ls: any(alert.id in line for line in ls), "the webhook's body")
    finally:
        for proc in (listen, watch):
            proc.terminate()
            proc.wait(10)
