"""RFC 6238 time-based one-time passwords (SHA-1, 6 digits, 30 s), the authenticator-app flavour.

Implemented on ``hmac`` directly (about 30 lines) rather than through pyotp so that every check is
typed and visible here: the window, the replay rule and the constant-time comparison.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from urllib.parse import quote, urlencode

__all__ = ["STEP_S", "current_code", "new_totp_secret", "provisioning_uri", "verify_totp"]

STEP_S = 30
DIGITS = 6
_SECRET_BYTES = 20  # 160 bits, the RFC 4226 recommendation for HMAC-SHA1
_CODE = re.compile(r"[0-9]{6}")  # not str.isdigit(): that accepts "١٢٣٤٥٦" and other scripts


def new_totp_secret() -> str:
    """A fresh random secret: 160 bits, base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii").rstrip("=")


def _secret_bytes(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    try:
        key = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except ValueError as exc:
        raise ValueError("TOTP secret is not valid base32") from exc
    if len(key) < 10:  # 80 bits, RFC 4226's floor
        raise ValueError(f"TOTP secret must hold at least 80 bits, got {len(key) * 8}")
    return key


def _code_at(key: bytes, step: int) -> str:
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**DIGITS:0{DIGITS}d}"


def current_code(secret: str, now: float) -> str:
    """The code an authenticator shows at Unix time ``now`` (for tests and tooling)."""
    return _code_at(_secret_bytes(secret), int(now // STEP_S))


def provisioning_uri(secret: str, account: str, issuer: str = "Sentinel") -> str:
    """The ``otpauth://`` URI to show as a QR code when enrolling an authenticator app."""
    _secret_bytes(secret)  # refuse to enrol a secret we could not verify later
    if not account or not issuer or ":" in account or ":" in issuer:
        raise ValueError("account and issuer must be non-empty and contain no ':'")
    label = f"{quote(issuer, safe='')}:{quote(account, safe='@')}"
    query = urlencode(
        {
            "secret": secret.replace(" ", "").upper().rstrip("="),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_S,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def verify_totp(secret: str, code: str, *, now: float, last_used_step: int | None) -> int | None:
    """Checks a TOTP code and returns the time step it matched.

    Accepted: the current step and the one before it, to forgive a code typed just as it
    rolled over. Future steps are refused: a code from a clock running ahead buys an attacker
    who phished it more time, and a server should not need them if its clock is synced.

    Each step can be used once. Store the returned step and pass it back as ``last_used_step``;
    any code for that step or an earlier one is then refused, so a code read over a shoulder or
    replayed from a log is worthless. (Attempts must also be rate limited: 10^6 codes are few.)

    Args:
        secret: The user's base32 secret.
        code: What the user typed: exactly six ASCII digits (strip spaces before calling).
        now: Current Unix time.
        last_used_step: The step of the last accepted code, or None.

    Returns:
        The matched step, or None when the code is wrong, malformed, or already used.
    """
    key = _secret_bytes(secret)
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return None
    current = int(now // STEP_S)
    matched: int | None = None
    # Compare against both candidates every time, in constant time, so neither the position of
    # a mismatching digit nor which step matched shows up in the response time.
    for step in (current - 1, current):
        if hmac.compare_digest(_code_at(key, step).encode(), code.encode()):
            matched = step
    if matched is None or (last_used_step is not None and matched <= last_used_step):
        return None
    return matched
