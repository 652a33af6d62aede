"""Real receivers for the notifier's tests, all on 127.0.0.1.

- ``HttpSink``: an HTTP server receiving webhooks (it verifies each signature and its replay
  window, and counts duplicates by idempotency key) and standing in for a Twilio-shaped SMS
  provider (``POST /2010-04-01/Accounts/<sid>/Messages.json`` answers a message ``sid``). It
  can be made to answer 503 (a receiver that is down, or to the next ``fail_next`` requests) or
  stopped and started on the same port.
- ``SmtpSink``: an ``aiosmtpd`` SMTP server keeping every accepted mail; recipients starting
  with ``bounce`` are refused (550); optionally STARTTLS or implicit TLS with a certificate
  made in the test, and AUTH (LOGIN/PLAIN, over TLS only) against given users.
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
from tests.utils.tls import ServerCert


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
    fail_next: int = 0  # answer 503 to this many of the next POSTs
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
                with sink.lock:
                    refuse = sink.down or sink.fail_next > 0
                    if refuse:
                        sink.refused += 1
                        sink.fail_next = max(sink.fail_next - 1, 0)
                if refuse:
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
    """An aiosmtpd server on a free port.

    Args:
        security: "none", "starttls" (STARTTLS offered and required before MAIL) or "tls"
            (implicit TLS from the first byte).
        cert: The server's certificate (``tests.utils.tls``) for starttls/tls.
        users: Accepted (login, password) pairs: AUTH is then required, and offered only
            over TLS (``auth_require_tls``).
    """

    def __init__(
        self,
        security: str = "none",
        cert: ServerCert | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.port = free_port()
        self.security = security
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[str, bool]] = []  # (login, accepted)
        self.tls_sessions = 0  # mails received over TLS
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
                # aiosmtpd marks STARTTLS sessions; an implicit-TLS server has no plain socket
                sink.tls_sessions += session.ssl is not None or security == "tls"
                return "250 Message accepted for delivery"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> Any:
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            login, password = data.login.decode(), data.password.decode()
            ok = users is not None and users.get(login) == password
            sink.logins.append((login, ok))
            return AuthResult(success=ok, handled=False)

        kw: dict[str, Any] = {}
        if security == "starttls":
            assert cert is not None, "starttls needs a certificate"
            kw.update(tls_context=cert.server_context(), require_starttls=True)
        elif security == "tls":
            assert cert is not None, "tls needs a certificate"
            kw.update(ssl_context=cert.server_context())
        if users is not None:
            # AUTH only over TLS; aiosmtpd counts only STARTTLS as TLS, so an implicit-TLS
            # server (TLS from the first byte) turns its check off.
            kw.update(
                authenticator=authenticate,
                auth_required=True,
                auth_require_tls=security != "tls",
            )
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kw)

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
