"""The notifier: deliveries per second per channel, alert → webhook latency, outbox cost.

What runs, all on this machine: a database (SQLite under the work dir, or
``SENTINEL_BENCH_DB_URL``, e.g. PostgreSQL), a local HTTP server receiving webhooks and
standing in for the SMS provider, an aiosmtpd SMTP server, and the Mosquitto broker on
127.0.0.1:1883 (the MQTT line says so when there is none). The relay is the product's
(``sentinel.notify.relay.Relay``) with its default workers and batch, and rate limits opened
wide (they would otherwise be what is measured).

1. **alert writes/s** with and without the outbox row (``AlertRepository.outbox``), ``WRITES``
   alerts each, one transaction per alert as the pipeline writes them; three alternated
   rounds, the best of each.
2. **deliveries/s per channel**: ``BURST`` alerts already in the outbox, one subscription of
   that channel; time from the first tick until every delivery is recorded delivered (or sent,
   for SMS), planning included.
3. **latency**: ``LATENCY_ALERTS`` alerts written one at a time, 20 ms apart, while the relay
   loop runs (``poll_interval_s`` = ``POLL_S``); alert committed → webhook received, p50/p95.

``BURST`` (env ``SENTINEL_BENCH_NOTIFY_BURST``) defaults to 10,000 for webhooks, the issue's
burst; the other channels run a tenth of it.
"""

from __future__ import annotations

import email
import http.server
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import percentile
from sentinel.config import NotifySettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.notify.relay import Relay, make_limiter, make_senders
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.db import make_engine, migrate
from sentinel.store.notify_repo import NotifyRepository
from sentinel.store.repo import CameraRepository

BURST = int(os.environ.get("SENTINEL_BENCH_NOTIFY_BURST", "10000"))
WRITES = 2000
LATENCY_ALERTS = 200
POLL_S = 0.05
SECRET = "bench-secret"
DECISION = AlertDecision(True, Severity.HIGH, "bench", ("x",), "look", DecidedBy.RULES)


class _Sink:
    """Receives webhooks and SMS posts; records the arrival time of each alert id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # No Nagle: the answer's head and body are two writes (~40 ms apart otherwise).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                if self.path.endswith("/Messages.json"):
                    answer = json.dumps({"sid": "SM" + uuid.uuid4().hex}).encode()
                else:
                    answer = b"{}"
                    alert_id = json.loads(body).get("alert_id")
                    with sink.lock:
                        sink.arrivals.setdefault(alert_id, now)
                with sink.lock:
                    sink.count += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _smtp() -> Any:
    from aiosmtpd.controller import Controller

    class Handler:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            email.message_from_bytes(envelope.content)
            Handler.count += 1
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


def _mqtt_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


def _fresh_engine(workdir: Path, name: str) -> Any:
    url = os.environ.get("SENTINEL_BENCH_DB_URL")
    if url:
        engine = make_engine(url)
        migrate(engine)
        with engine.begin() as conn:  # a clean slate in the given database
            for table in ("notify_deliveries", "notify_outbox", "notify_subscriptions", "alerts"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
    else:
        engine = make_engine(f"sqlite:///{workdir / (name + '.sqlite')}")
    migrate(engine)
    return engine


def _settings(sink: _Sink, smtp_port: int, **kw: Any) -> NotifySettings:
    return NotifySettings(
        webhook_secret=SECRET,
        link_secret="l",
        allow_http=True,
        allow_hosts=["127.0.0.1"],
        channel_rate_per_s=1e5,
        channel_burst=100000,
        recipient_rate_per_s=1e5,
        recipient_burst=100000,
        smtp={"port": smtp_port},
        sms={"base_url": sink.url, "account_sid": "AC", "auth_token": "t", "sender": "+1"},
        mqtt={"prefix": "sentinel-bench", "enabled": _mqtt_up()},
        **kw,
    )


def _relay(engine: Any, settings: NotifySettings) -> Relay:
    return Relay(
        NotifyRepository(engine),
        AlertRepository(engine),
        CameraRepository(engine),
        make_senders(settings, SECRET),
        make_limiter(settings, None),
        settings,
        "l",
    )


def write_rate(workdir: Path, outbox: bool, count: int = WRITES) -> float:
    """Alerts written per second, each in its own transaction."""
    engine = _fresh_engine(workdir, f"writes-{outbox}-{uuid.uuid4().hex[:6]}")
    repo = AlertRepository(engine)
    repo.outbox = outbox
    t0 = time.perf_counter()
    for i in range(count):
        repo.record_rule_decision(f"w{i}", f"cam{i % 8}", "person", DECISION)
    rate = count / (time.perf_counter() - t0)
    engine.dispose()
    return rate


def delivery_rate(workdir: Path, channel: str, target: str, count: int, settings: Any) -> float:
    """Deliveries per second for ``count`` alerts already in the outbox."""
    engine = _fresh_engine(workdir, f"chan-{channel}")
    notify = NotifyRepository(engine)
    body = {"name": channel, "recipient": "ops", "channel": channel, "target": target}
    notify.put_subscription("bench", body, "bench", create=True)
    alerts = AlertRepository(engine)
    for i in range(count):
        alerts.record_rule_decision(f"d{i}", f"cam{i % 8}", "person", DECISION)
    relay = _relay(engine, settings)
    done_states = ("delivered", "sent")
    t0 = time.perf_counter()
    while True:
        report = relay.tick()
        counts = notify.state_counts()
        if sum(counts.get(s, 0) for s in done_states) >= count:
            break
        if not report.busy():
            time.sleep(0.01)
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"{channel}: only {counts} after 600 s")
    rate = count / (time.perf_counter() - t0)
    relay.close()
    engine.dispose()
    return rate


def latency(workdir: Path, sink: _Sink, settings: NotifySettings) -> list[float]:
    """Alert committed → webhook received, in ms, with the relay loop running."""
    engine = _fresh_engine(workdir, "latency")
    NotifyRepository(engine).put_subscription(
        "lat",
        {"name": "lat", "recipient": "ops", "channel": "webhook", "target": f"{sink.url}/lat"},
        "bench",
        create=True,
    )
    relay = _relay(engine, settings)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if not relay.tick().busy():
                stop.wait(settings.poll_interval_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    alerts = AlertRepository(engine)
    written: dict[str, float] = {}
    for i in range(LATENCY_ALERTS):
        a = alerts.record_rule_decision(f"l{i}", "cam", "person", DECISION)
        written[a.id] = time.perf_counter()
        time.sleep(0.02)
    deadline = time.monotonic() + 60
    while any(k not in sink.arrivals for k in written) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    relay.close()
    engine.dispose()
    return [(sink.arrivals[k] - t) * 1000 for k, t in written.items() if k in sink.arrivals]


def run(model: Path) -> None:
    """The benchmark (``model`` is unused: no detector here); works in a temporary folder."""
    del model
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-notify-") as tmp:
        _run(Path(tmp))


def _run(workdir: Path) -> None:
    db = "SENTINEL_BENCH_DB_URL" if os.environ.get("SENTINEL_BENCH_DB_URL") else "SQLite"
    print(f"notify: database {db}, {os.cpu_count()} CPUs", flush=True)
    # Alternated, three rounds each, best of each: the machine's load moves under the runs.
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):
        for outbox in (False, True):
            rates[outbox].append(write_rate(workdir, outbox))
    with_outbox, without = max(rates[True]), max(rates[False])
    print(
        f"alert writes/s: {with_outbox:.0f} with the outbox, {without:.0f} without "
        f"({(1 - with_outbox / without) * 100:.1f} % cost; best of 3 alternated rounds of "
        f"{WRITES})",
        flush=True,
    )
    sink = _Sink()
    smtp, smtp_port = _smtp()
    try:
        settings = _settings(sink, smtp_port)
        small = max(BURST // 10, 100)
        plan = [
            ("webhook", f"{sink.url}/hook", BURST),
            ("sms", "+15550000", small),
            ("email", "ops@example.com", small),
        ]
        if settings.mqtt.enabled:
            plan.append(("mqtt", "-", small))
        else:
            print("mqtt: no broker on 127.0.0.1:1883, not measured")
        for channel, target, count in plan:
            rate = delivery_rate(workdir, channel, target, count, settings)
            print(f"{channel}: {rate:.0f} deliveries/s ({count} alerts)", flush=True)
        lat = latency(workdir, sink, _settings(sink, smtp_port, poll_interval_s=POLL_S))
        print(
            f"alert -> webhook received: p50 {percentile(lat, 50):.1f} ms, "
            f"p95 {percentile(lat, 95):.1f} ms ({len(lat)} of {LATENCY_ALERTS} alerts, "
            f"poll {POLL_S * 1000:.0f} ms)",
            flush=True,
        )
    finally:
        sink.close()
        smtp.stop()
