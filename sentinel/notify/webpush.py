"""Web Push: message encryption (RFC 8291, ``aes128gcm`` of RFC 8188) and VAPID (RFC 8292).

Pure functions over ``cryptography``; no I/O but the VAPID key file of the data dir.

- ``encrypt`` seals a payload for one browser subscription: an ephemeral P-256 key agrees a
  secret with the subscription's ``p256dh`` key, HKDF mixes in its ``auth`` secret, and the
  payload becomes a single AES-128-GCM record behind the ``aes128gcm`` header (salt, record
  size, the ephemeral public key). ``decrypt`` is the browser's side (tests, diagnostics).
- ``VapidKey`` is the server's P-256 identity: its public key (uncompressed point, base64url)
  is the ``applicationServerKey`` a browser subscribes with; ``authorization`` signs an ES256
  JWT (``aud`` the push service's origin, ``exp`` at most 24 h ahead, ``sub`` a contact) into
  the ``Authorization: vapid t=..., k=...`` header the push service checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AUTH_LEN",
    "MAX_PAYLOAD",
    "P256DH_LEN",
    "RECORD_SIZE",
    "VAPID_MAX_EXP_S",
    "PushKeys",
    "VapidKey",
    "b64url",
    "b64url_decode",
    "decrypt",
    "encrypt",
    "load_point",
    "verify_vapid",
]

P256DH_LEN = 65  # an uncompressed P-256 point: 0x04 || X || Y
AUTH_LEN = 16
RECORD_SIZE = 4096
_TAG = 16
_HEADER = 16 + 4 + 1 + P256DH_LEN  # salt, record size, key id length, key id
# One record of RECORD_SIZE holds the payload, its delimiter and the tag; push services accept
# at least 4096 bytes of body, header included.
MAX_PAYLOAD = RECORD_SIZE - _HEADER - _TAG - 1
VAPID_MAX_EXP_S = 24 * 3600


def b64url(data: bytes) -> str:
    """Base64url without padding (what browsers and RFC 8292 use)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decodes base64url with or without padding; ValueError on anything else (standard
    base64's ``+`` and ``/`` are refused: browsers send base64url)."""
    stripped = text.rstrip("=")
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if not stripped or any(c not in alphabet for c in stripped) or len(stripped) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def load_point(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its uncompressed point; ValueError if it is not one (or not on
    the curve)."""
    if len(raw) != P256DH_LEN or raw[0] != 4:
        raise ValueError(f"expected an uncompressed P-256 point of {P256DH_LEN} bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise ValueError("not a point on the P-256 curve") from exc


@dataclass(frozen=True, slots=True)
class PushKeys:
    """A browser subscription's keys (``PushSubscription.getKey``), decoded and checked.

    Raises:
        ValueError: ``p256dh`` is not a P-256 point on the curve, or ``auth`` not 16 bytes.
    """

    p256dh: bytes
    auth: bytes

    def __post_init__(self) -> None:
        if len(self.auth) != AUTH_LEN:
            raise ValueError(f"auth must be {AUTH_LEN} bytes, got {len(self.auth)}")
        load_point(self.p256dh)  # on the curve, or ValueError

    @classmethod
    def of(cls, p256dh: str, auth: str) -> PushKeys:
        return cls(b64url_decode(p256dh), b64url_decode(auth))


def _derive(
    auth: bytes, secret: bytes, ua_public: bytes, as_public: bytes, salt: bytes
) -> tuple[bytes, bytes]:
    """RFC 8291 section 3.4 then RFC 8188 section 2.2: the content key and the nonce (of
    record 0; one record is all we send)."""
    prk_key = _hmac(auth, secret)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    return cek, nonce


def encrypt(
    payload: bytes,
    keys: PushKeys,
    *,
    salt: bytes | None = None,
    server_key: ec.EllipticCurvePrivateKey | None = None,
    record_size: int = RECORD_SIZE,
) -> bytes:
    """The ``aes128gcm`` body carrying ``payload`` to the subscription of ``keys``.

    ``salt`` and ``server_key`` are fresh for every message unless given (the RFC's test
    vector gives them).

    Raises:
        ValueError: the payload does not fit one record.
    """
    if len(payload) > record_size - _HEADER - _TAG - 1:
        raise ValueError(f"payload of {len(payload)} bytes does not fit one {record_size} record")
    salt = secrets.token_bytes(16) if salt is None else salt
    if len(salt) != 16:
        raise ValueError("salt must be 16 bytes")
    server_key = server_key or ec.generate_private_key(ec.SECP256R1())
    as_public = _public_point(server_key.public_key())
    secret = server_key.exchange(ec.ECDH(), load_point(keys.p256dh))
    cek, nonce = _derive(keys.auth, secret, keys.p256dh, as_public, salt)
    sealed = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)  # 0x02: the last record
    header = salt + record_size.to_bytes(4, "big") + bytes([len(as_public)]) + as_public
    return header + sealed


def decrypt(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """The payload of an ``aes128gcm`` body, as the subscribed browser reads it (one record).

    Raises:
        ValueError: a malformed header, a wrong key or a tampered body.
    """
    if len(body) < 21:
        raise ValueError("too short for an aes128gcm header")
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    as_public = body[21 : 21 + idlen]
    sealed = body[21 + idlen :]
    if rs < 18 or len(sealed) > rs:
        raise ValueError("only one record is supported")
    ua_public = _public_point(private_key.public_key())
    secret = private_key.exchange(ec.ECDH(), load_point(as_public))
    cek, nonce = _derive(auth, secret, ua_public, as_public, salt)
    try:
        plain = AESGCM(cek).decrypt(nonce, sealed, None)
    except InvalidTag as exc:
        raise ValueError("the body does not decrypt with this key") from exc
    plain = plain.rstrip(b"\x00")
    if not plain.endswith(b"\x02"):
        raise ValueError("not a last record (delimiter 0x02 missing)")
    return plain[:-1]


def _jwt_part(obj: dict[str, object]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _audience(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("a push endpoint must be an absolute http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


class VapidKey:
    """The application server's VAPID key (P-256).

    Build it with ``load_or_create`` (a PKCS#8 PEM in the data dir, mode 0600, made on first
    start) or ``generate`` (tests).
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"a VAPID key must be P-256, got {private_key.curve.name}")
        self.private_key = private_key
        self.public_point = _public_point(private_key.public_key())

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, path: Path) -> VapidKey:
        """The key in ``path``, made there first if missing.

        Several processes (the notifier actor, the API replicas) may start at once: a new key
        is written to a private temporary file and linked into place, so exactly one candidate
        wins and all read the same key. A key file others can read is refused.
        """
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won
            finally:
                tmp.unlink()
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermissionError(f"{path} has mode {mode:o}; it must not be accessible to others")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: expected an EC private key, got {type(key).__name__}")
        return cls(key)

    @property
    def public_key(self) -> str:
        """The ``applicationServerKey``: the uncompressed public point, base64url."""
        return b64url(self.public_point)

    def token(
        self, endpoint: str, subject: str, *, now: float | None = None, ttl_s: int = 43200
    ) -> str:
        """An ES256 JWT for the push service of ``endpoint`` (RFC 8292 section 2)."""
        if not 0 < ttl_s <= VAPID_MAX_EXP_S:
            raise ValueError(f"the JWT may live at most {VAPID_MAX_EXP_S} s, got {ttl_s}")
        exp = int(time.time() if now is None else now) + ttl_s
        claims: dict[str, object] = {"aud": _audience(endpoint), "exp": exp, "sub": subject}
        signing_input = f"{_jwt_part({'typ': 'JWT', 'alg': 'ES256'})}.{_jwt_part(claims)}"
        der = self.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def authorization(self, endpoint: str, subject: str, *, now: float | None = None) -> str:
        """The ``Authorization`` header's value for a push to ``endpoint``."""
        return f"vapid t={self.token(endpoint, subject, now=now)}, k={self.public_key}"


def verify_vapid(header: str, endpoint: str, *, now: float | None = None) -> dict[str, object]:
    """Checks an ``Authorization: vapid t=..., k=...`` header as a push service does: the
    ES256 signature under ``k``, ``aud`` the origin of ``endpoint``, ``exp`` in the future and
    at most 24 h ahead. Returns the claims (with ``k`` added).

    Raises:
        ValueError: anything wrong, with what.
    """
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("not a vapid authorization")
    params = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
    token, k = params.get("t", ""), params.get("k", "")
    head_b64, claims_b64, sig_b64 = [*token.split("."), "", ""][:3]
    head = json.loads(b64url_decode(head_b64))
    if head.get("alg") != "ES256":
        raise ValueError(f"alg must be ES256, got {head.get('alg')!r}")
    sig = b64url_decode(sig_b64)
    if len(sig) != 64:
        raise ValueError("an ES256 signature is 64 bytes")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        load_point(b64url_decode(k)).verify(
            der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
        )
    except Exception as exc:  # InvalidSignature
        raise ValueError("the signature does not verify under k") from exc
    claims: dict[str, object] = json.loads(b64url_decode(claims_b64))
    if claims.get("aud") != _audience(endpoint):
        raise ValueError(f"aud {claims.get('aud')!r} is not the endpoint's origin")
    at = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int) or not at < exp <= at + VAPID_MAX_EXP_S:
        raise ValueError(f"exp {exp!r} is not within the next 24 h")
    return claims | {"k": k}
