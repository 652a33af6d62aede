"""Access tokens under attack, and opaque tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sentinel.gateway.keys import KeyRing
from sentinel.gateway.tokens import (
    InvalidToken,
    TokenIssuer,
    hash_opaque,
    new_opaque_token,
    opaque_matches,
)

T0 = 1_750_000_000
ISS, AUD = "https://sentinel.test", "sentinel-api"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj: dict[str, Any]) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def sign_rs256(header: dict[str, Any], payload: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """Signs by hand, so tests can build tokens PyJWT would refuse to make."""
    signing_input = f"{seg(header)}.{seg(payload)}"
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(sig)}"


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    return KeyRing.load_or_create(tmp_path_factory.mktemp("ring") / "keys")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(ring: KeyRing, clock: Clock) -> TokenIssuer:
    return TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock)


def good_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "iat": T0,
        "nbf": T0,
        "exp": T0 + 900,
        "jti": "j1",
        "scope": "events:read",
        "kind": "user",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def header(ring: KeyRing, **overrides: Any) -> dict[str, Any]:
    return {"alg": "RS256", "typ": "at+jwt", "kid": ring.active.kid, **overrides}


def reason(issuer: TokenIssuer, token: Any) -> str:
    with pytest.raises(InvalidToken) as info:
        issuer.decode_access(token)
    return info.value.reason


def test_round_trip(issuer: TokenIssuer, ring: KeyRing) -> None:
    token = issuer.issue_access("user-1", ["events:read", "cameras:read"], cameras=None)
    hdr = jwt.get_unverified_header(token)
    assert hdr == {"alg": "RS256", "typ": "at+jwt", "kid": ring.active.kid}
    claims = issuer.decode_access(token)
    assert claims.subject == "user-1"
    assert claims.scopes == {"events:read", "cameras:read"}
    assert claims.cameras is None
    assert claims.kind == "user"
    assert claims.issued_at == datetime.fromtimestamp(T0, UTC)
    assert claims.expires_at - claims.issued_at == timedelta(seconds=900)
    assert len(claims.jti) >= 20
    assert "cams" not in jwt.decode(token, options={"verify_signature": False})


def test_empty_camera_list_means_no_camera_not_all(issuer: TokenIssuer) -> None:
    token = issuer.issue_access("k1", ["events:read"], cameras=[], kind="apikey")
    claims = issuer.decode_access(token)
    assert claims.cameras == frozenset() and claims.kind == "apikey"
    token = issuer.issue_access("u", [], cameras=["front_door", "group:lobby"])
    assert issuer.decode_access(token).cameras == frozenset({"front_door", "group:lobby"})


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_rejected(issuer: TokenIssuer, ring: KeyRing, alg: str) -> None:
    token = f"{seg(header(ring, alg=alg))}.{seg(good_payload(scope='admin'))}."
    assert reason(issuer, token) == "bad algorithm"


def test_hs256_signed_with_the_public_key_is_rejected(issuer: TokenIssuer, ring: KeyRing) -> None:
    # The classic key-confusion attack: the verifier's public key used as an HMAC secret.
    public_pem = ring.public_keys()[ring.active.kid].public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, public_pem.strip()):
        signing_input = f"{seg(header(ring, alg='HS256'))}.{seg(good_payload(scope='admin'))}"
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert reason(issuer, f"{signing_input}.{b64(sig)}") == "bad algorithm"


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", "HS512"])
def test_other_algorithms_are_rejected(issuer: TokenIssuer, ring: KeyRing, alg: str) -> None:
    token = sign_rs256(header(ring, alg=alg), good_payload(), ring.active.private_key)
    assert reason(issuer, token) == "bad algorithm"


def test_expiry_honours_the_leeway_and_no_more(issuer: TokenIssuer, clock: Clock) -> None:
    token = issuer.issue_access("user-1", ["events:read"], cameras=None)
    clock.t = T0 + 900 + 9
    issuer.decode_access(token)
    clock.t = T0 + 900 + 10
    assert reason(issuer, token) == "expired"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
def test_missing_required_claim(issuer: TokenIssuer, ring: KeyRing, claim: str) -> None:
    token = sign_rs256(header(ring), good_payload(**{claim: None}), ring.active.private_key)
    assert reason(issuer, token) == f"missing {claim}"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"aud": "another-service"}, "bad audience"),
        ({"aud": [AUD, "another-service"]}, "bad audience"),  # strict: one audience only
        ({"iss": "https://evil.test"}, "bad issuer"),
        ({"nbf": T0 + 60}, "not yet valid"),
        ({"iat": T0 + 60}, "not yet valid"),
        ({"exp": T0 + 7200}, "lifetime too long"),
        ({"exp": float(T0 + 900)}, "bad exp"),
        ({"exp": str(T0 + 900)}, "bad exp"),
        ({"iat": True}, "bad iat"),
        ({"kind": "root"}, "bad kind"),
        ({"kind": None}, "bad kind"),
        ({"cams": "front_door"}, "bad cams"),
        ({"cams": [1, 2]}, "bad cams"),
        ({"scope": ["admin"]}, "bad scope"),
        ({"sub": ""}, "bad subject"),
    ],
)
def test_bad_claims_are_rejected(
    issuer: TokenIssuer, ring: KeyRing, overrides: dict[str, Any], expected: str
) -> None:
    token = sign_rs256(header(ring), good_payload(**overrides), ring.active.private_key)
    assert reason(issuer, token) == expected


def test_wrong_audience_and_issuer_from_a_real_issuer(ring: KeyRing, clock: Clock) -> None:
    mine = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock)
    other_aud = TokenIssuer(ring, issuer=ISS, audience="billing", clock=clock)
    other_iss = TokenIssuer(ring, issuer="https://other.test", audience=AUD, clock=clock)
    assert reason(mine, other_aud.issue_access("u", [], cameras=None)) == "bad audience"
    assert reason(mine, other_iss.issue_access("u", [], cameras=None)) == "bad issuer"


def test_unknown_kid(issuer: TokenIssuer, ring: KeyRing, tmp_path: Path) -> None:
    stranger = KeyRing.load_or_create(tmp_path / "other")
    foreign = TokenIssuer(stranger, issuer=ISS, audience=AUD, clock=Clock())
    assert reason(issuer, foreign.issue_access("u", ["admin"], cameras=None)) == "unknown key"
    key = ring.active.private_key
    for hdr in (
        {"alg": "RS256", "typ": "at+jwt"},
        header(ring, kid=""),
        header(ring, kid="a" * 16),
    ):
        assert reason(issuer, sign_rs256(hdr, good_payload(), key)) == "unknown key"
    # A kid that is not even a string is refused while parsing the header.
    assert reason(issuer, sign_rs256(header(ring, kid=["x"]), good_payload(), key)) == "malformed"


def test_known_kid_with_another_key_fails_the_signature(issuer: TokenIssuer, ring: KeyRing) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sign_rs256(header(ring), good_payload(scope="admin"), attacker)
    assert reason(issuer, token) == "bad signature"


def test_tampered_payload(issuer: TokenIssuer) -> None:
    token = issuer.issue_access("user-1", ["events:read"], cameras=["front_door"])
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims.update(scope="admin users:admin", cams=None)
    assert reason(issuer, f"{h}.{seg(claims)}.{s}") == "bad signature"


def test_missing_or_wrong_typ(issuer: TokenIssuer, ring: KeyRing) -> None:
    key = ring.active.private_key
    for hdr in ({"alg": "RS256", "kid": ring.active.kid}, header(ring, typ="JWT")):
        assert reason(issuer, sign_rs256(hdr, good_payload(), key)) == "bad type"


def test_rotated_key_still_verifies_then_pruned_key_does_not(tmp_path: Path) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    ring = KeyRing.load_or_create(tmp_path / "keys", now=start)
    clock = Clock()
    issuer = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock)
    old_kid = ring.active.kid
    old_token = issuer.issue_access("user-1", ["events:read"], cameras=None)
    new_kid = ring.rotate(start + timedelta(seconds=10))
    assert jwt.get_unverified_header(issuer.issue_access("u", [], cameras=None))["kid"] == new_kid
    assert issuer.decode_access(old_token).subject == "user-1"
    assert ring.prune(start + timedelta(seconds=11)) == [old_kid]
    assert reason(issuer, old_token) == "unknown key"


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "....", "x" * 10_000, None, 42, b"a.b.c", "é.é.é"],
)
def test_garbage_is_malformed(issuer: TokenIssuer, token: Any) -> None:
    assert reason(issuer, token) == "malformed"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": ""}, "subject"),
        ({"kind": "admin"}, "kind"),
        ({"scopes": ["events:read admin"]}, "whitespace"),
        ({"scopes": [""]}, "whitespace"),
    ],
)
def test_issue_validates_its_input(
    issuer: TokenIssuer, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"subject": "u", "scopes": ["events:read"], "kind": "user", **kwargs}
    with pytest.raises(ValueError, match=message):
        issuer.issue_access(args["subject"], args["scopes"], cameras=None, kind=args["kind"])


def test_jwks_verifies_issued_tokens(issuer: TokenIssuer, ring: KeyRing) -> None:
    token = issuer.issue_access("user-1", ["events:read"], cameras=None)
    jwk = next(k for k in ring.jwks()["keys"] if k["kid"] == ring.active.kid)
    data = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=AUD, options={"verify_exp": False}
    )
    assert data["sub"] == "user-1"


@pytest.mark.parametrize("prefix", ["srt_", "sk_"])
def test_opaque_tokens(prefix: str) -> None:
    token, digest = new_opaque_token(prefix)
    assert token.startswith(prefix)
    assert len(base64.urlsafe_b64decode(token[len(prefix) :] + "=")) == 32  # 256 bits
    assert digest == hashlib.sha256(token.encode()).hexdigest() == hash_opaque(token)
    assert opaque_matches(token, digest) and opaque_matches(token, digest.upper())
    assert not opaque_matches(token + "x", digest)
    assert not opaque_matches(token, "é" * 64)
    assert len({new_opaque_token(prefix)[0] for _ in range(100)}) == 100


@pytest.mark.parametrize("prefix", ["", "SK_", "sk", "sk-", "a_very_long_prefix_", "s k_"])
def test_opaque_prefix_is_validated(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_opaque_token(prefix)


@pytest.mark.parametrize(
    "kwargs",
    [{"issuer": ""}, {"audience": ""}, {"access_ttl_s": 0}, {"leeway_s": 3600}],
)
def test_issuer_config_is_validated(ring: KeyRing, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"issuer": ISS, "audience": AUD, **kwargs}
    with pytest.raises(ValueError):
        TokenIssuer(ring, **args)
