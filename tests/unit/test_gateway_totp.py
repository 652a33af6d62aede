"""RFC 6238 TOTP: vectors, the acceptance window, replay."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from sentinel.gateway.totp import (
    STEP_S,
    current_code,
    new_totp_secret,
    provisioning_uri,
    verify_totp,
)

# RFC 6238 appendix B, SHA-1 seed "12345678901234567890"; codes truncated to 6 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
NOW = 1_750_000_015.0  # mid-step
STEP = int(NOW // STEP_S)
ARABIC_INDIC = {ord("0") + d: 0x0660 + d for d in range(10)}
FULL_WIDTH = {ord("0") + d: 0xFF10 + d for d in range(10)}


@pytest.fixture(scope="module")
def secret() -> str:
    return new_totp_secret()


@pytest.mark.parametrize(
    ("t", "code"),
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_rfc6238_vectors(t: int, code: str) -> None:
    assert current_code(RFC_SECRET, t) == code


def test_agrees_with_pyotp(secret: str) -> None:
    for t in (0, NOW, NOW + 12345):
        assert current_code(secret, t) == pyotp.TOTP(secret).at(t)


def test_new_secret_is_160_random_bits() -> None:
    s = new_totp_secret()
    assert len(s) == 32 and s == s.upper()
    assert len(base64.b32decode(s)) == 20
    assert len({new_totp_secret() for _ in range(50)}) == 50


def test_current_step_accepted_then_replay_rejected(secret: str) -> None:
    code = current_code(secret, NOW)
    assert verify_totp(secret, code, now=NOW, last_used_step=None) == STEP
    assert verify_totp(secret, code, now=NOW, last_used_step=STEP) is None
    assert verify_totp(secret, code, now=NOW + 1, last_used_step=STEP) is None


@pytest.mark.parametrize(
    ("offset_steps", "accepted"),
    [(0, True), (-1, True), (-2, False), (-10, False), (1, False), (2, False)],
)
def test_acceptance_window(secret: str, offset_steps: int, accepted: bool) -> None:
    code = current_code(secret, NOW + offset_steps * STEP_S)
    result = verify_totp(secret, code, now=NOW, last_used_step=None)
    assert result == (STEP + offset_steps if accepted else None)


def test_past_code_refused_once_a_newer_step_was_used(secret: str) -> None:
    past = current_code(secret, NOW - STEP_S)
    assert verify_totp(secret, past, now=NOW, last_used_step=STEP - 2) == STEP - 1
    assert verify_totp(secret, past, now=NOW, last_used_step=STEP - 1) is None
    assert verify_totp(secret, past, now=NOW, last_used_step=STEP) is None


def test_code_typed_at_rollover_is_accepted_once(secret: str) -> None:
    code = current_code(secret, STEP * STEP_S + 29.9)
    step = verify_totp(secret, code, now=(STEP + 1) * STEP_S + 0.1, last_used_step=None)
    assert step == STEP
    assert verify_totp(secret, code, now=(STEP + 1) * STEP_S + 0.2, last_used_step=step) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:5],
        lambda c: c + "0",
        lambda c: f"{c[:3]} {c[3:]}",
        lambda c: f" {c}",
        lambda c: f"{c}\n",
        lambda c: "abcdef",
        lambda c: "",
        # Arabic-Indic and full-width digits: str.isdigit() says yes, int() even parses them.
        lambda c: c.translate(ARABIC_INDIC),
        lambda c: c.translate(FULL_WIDTH),
    ],
)
def test_non_six_digit_input_rejected(secret: str, mangle: object) -> None:
    assert callable(mangle)
    code = mangle(current_code(secret, NOW))
    assert verify_totp(secret, code, now=NOW, last_used_step=None) is None


def test_wrong_code_rejected(secret: str) -> None:
    code = current_code(secret, NOW)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert verify_totp(secret, wrong, now=NOW, last_used_step=None) is None


def test_invalid_secret_raises() -> None:
    with pytest.raises(ValueError, match="base32"):
        verify_totp("not base32!", "123456", now=NOW, last_used_step=None)
    with pytest.raises(ValueError, match="80 bits"):
        current_code("AAAA", NOW)


def test_provisioning_uri(secret: str) -> None:
    uri = provisioning_uri(secret, "alice@example.com")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "otpauth",
        "totp",
        "/Sentinel:alice@example.com",
    )
    query = parse_qs(parts.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Sentinel"]
    assert query["digits"] == ["6"] and query["period"] == ["30"] and query["algorithm"] == ["SHA1"]
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.at(NOW) == current_code(secret, NOW)
    spaced = provisioning_uri(secret, "bob smith", issuer="Acme Security")
    assert spaced.startswith("otpauth://totp/Acme%20Security:bob%20smith?")


@pytest.mark.parametrize(
    ("account", "issuer"), [("", "Sentinel"), ("a:b", "Sentinel"), ("a", "x:y")]
)
def test_provisioning_uri_rejects_ambiguous_labels(secret: str, account: str, issuer: str) -> None:
    with pytest.raises(ValueError):
        provisioning_uri(secret, account, issuer=issuer)
