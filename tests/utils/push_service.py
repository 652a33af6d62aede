"""A Web Push service and a browser for the push tests, all on 127.0.0.1.

- ``PushService``: an HTTP server that takes pushes as FCM or Mozilla's autopush do: it keeps
  each request and answers 201, or the status set for its path (410: the browser dropped the
  subscription).
- ``Browser``: a browser's side of a subscription: its P-256 key pair and auth secret (made
  here with ``cryptography``), the ``PushSubscription`` JSON it posts, and the decryption of
  an ``aes128gcm`` push (written here from RFC 8188/8291 with ``cryptography``'s HKDF, apart
  from the server's code, so that the two check each other).
- ``check_vapid``: a push service's check of the ``Authorization: vapid`` header under a
  given public key.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.utils.media import free_port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


@dataclass
class Browser:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """``JSON.parse(JSON.stringify(pushSubscription))``."""
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": _b64(_point(self.key.public_key())), "auth": _b64(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21 : 21 + idlen]
        sealed = body[21 + idlen :]
        assert len(sealed) <= rs, "one record expected"
        shared = self.key.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        )
        me = _point(self.key.public_key())
        ikm = _hkdf(self.auth, shared, b"WebPush: info\x00" + me + sender, 32)
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        plain = AESGCM(cek).decrypt(nonce, sealed, None).rstrip(b"\x00")
        assert plain.endswith(b"\x02"), "the last record ends with 0x02"
        return plain[:-1]


def check_vapid(header: str, endpoint: str, public_key: str) -> dict[str, Any]:
    """The JWT's claims, after checking what a push service checks: the ``k`` is the
    subscription's application server key, the ES256 signature verifies under it, ``aud`` is
    the endpoint's origin and ``exp`` is within the next 24 hours."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "vapid", header
    params = dict(p.strip().split("=", 1) for p in rest.split(","))
    assert params["k"] == public_key
    head, claims, sig = params["t"].split(".")
    assert json.loads(_unb64(head)) == {"typ": "JWT", "alg": "ES256"}
    raw = _unb64(sig)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(public_key))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if bad
    found: dict[str, Any] = json.loads(_unb64(claims))
    parts = urlsplit(endpoint)
    assert found["aud"] == f"{parts.scheme}://{parts.netloc}"
    assert time.time() < found["exp"] <= time.time() + 24 * 3600
    assert str(found["sub"]).startswith(("mailto:", "https://"))
    return found


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService:
    port: int = field(default_factory=free_port)
    received: list[Push] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # path -> status (default 201)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    def endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/wpush/v2/{name}"

    def start(self) -> None:
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with service.lock:
                    service.received.append(
                        Push(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = service.answers.get(self.path, 201)
                self.send_response(status)
                self.send_header("Location", f"{self.path}/msg/{secrets.token_hex(4)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def pushes(self, path: str | None = None) -> list[Push]:
        with self.lock:
            return [p for p in self.received if path is None or p.path == path]
