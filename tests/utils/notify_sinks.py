"""Real receivers for the notifier's tests, all on 127.0.0.1.

- ``HttpSink``: an HTTP server receiving webhooks (it verifies each signature and its replay
  window, and counts duplicates by idempotency key) and standing in for a Twilio-shaped SMS
  provider (``POST /2010-04-01/Accounts/<sid>/Messages.json`` answers a message ``sid``). It
  can be made to answer 503 (a receiver that is down) or stopped and started on the same port.
- ``SmtpSink``: an ``aiosmtpd`` SMTP server keeping every accepted mail; recipients starting
  with ``bounce`` are refused (550).
- ``MqttCollector``: a paho-mqtt subscriber on the real Mosquitto at 127.0.0.1:1883.
"""

from __future__ import annotations

import collections
import email
import email.policy
import http.server
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from sentinel.notify.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_webhook,
)
from tests.utils.media import free_port


@dataclass
class Received:
    path: str
    key: str
    body: bytes
    headers: dict[str, str]
    verified: bool
    at: float


@dataclass
class HttpSink:
    secret: str
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # No Nagle: the answer's head and body are two writes (~40 ms apart otherwise).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                if sink.down:
                    with sink.lock:
                        sink.refused += 1
                    self._answer(503, b'{"error":"down"}')
                    return
                verified = verify_webhook(
                    sink.secret,
                    headers.get(TIMESTAMP_HEADER.lower(), ""),
                    headers.get(SIGNATURE_HEADER.lower(), ""),
                    body,
                    now=time.time(),
                )
                key = headers.get(IDEMPOTENCY_HEADER.lower(), "")
                with sink.lock:
                    sink.received.append(
                        Received(self.path, key, body, headers, verified, time.time())
                    )
                if self.path.endswith("/Messages.json"):
                    sid = "SM" + uuid.uuid4().hex
                    self._answer(201, json.dumps({"sid": sid, "status": "queued"}).encode())
                else:
                    self._answer(200, b"{}")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the reliability test does that)

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def webhooks(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if not r.path.endswith("/Messages.json")]

    def sms(self) -> list[dict[str, str]]:
        with self.lock:
            found = [r for r in self.received if r.path.endswith("/Messages.json")]
        return [{k: v[0] for k, v in parse_qs(r.body.decode()).items()} for r in found]

    def keys(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(r.key for r in self.received)


class SmtpSink:
    """An aiosmtpd server on a free port."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list[email.message.EmailMessage] = []
        sink = self

        class Handler:
            async def handle_RCPT(
                self, server: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                if address.startswith("bounce"):
                    return "550 5.1.1 no such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                sink.messages.append(msg)
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class MqttCollector:
    """Collects every message under ``<prefix>/#`` on the real broker."""

    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 1883) -> None:
        import paho.mqtt.client as mqtt

        self.prefix = prefix
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # type: ignore[attr-defined]

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            client.subscribe(f"{prefix}/#", qos=1)

        def on_subscribe(client: Any, userdata: Any, mid: Any, rcs: Any, props: Any) -> None:
            self.ready.set()

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with self.lock:
                self.messages.append((msg.topic, json.loads(msg.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError(f"could not subscribe to {prefix}/# on {host}:{port}")

    def topic(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, p in self.messages if t == f"{self.prefix}/{suffix}"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
