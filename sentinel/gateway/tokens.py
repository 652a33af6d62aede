"""Signed access tokens (RS256 JWTs) and opaque refresh / API-key tokens.

Access tokens are short-lived JWTs that every ingress replica can verify from the public keys
alone. Refresh tokens and API keys are opaque random strings; only their SHA-256 is stored, so a
leaked database does not yield usable credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from sentinel.gateway.keys import KeyRing

__all__ = [
    "TOKEN_KINDS",
    "AccessClaims",
    "InvalidToken",
    "TokenIssuer",
    "hash_opaque",
    "new_opaque_token",
    "opaque_matches",
]

TOKEN_KINDS = frozenset({"user", "apikey", "session"})
_ALGORITHM = "RS256"
# RFC 9068's media type for JWT access tokens. Requiring it stops a JWT minted for another
# purpose with the same keys (say a future signed download link) from passing as an access token.
_TYP = "at+jwt"
_MAX_TOKEN_CHARS = 8192
_REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}_")
_OPAQUE_BYTES = 32  # 256 bits: guessing is hopeless, so a fast hash is enough to store them


class InvalidToken(Exception):  # noqa: N818 - the name is part of the gateway API
    """A token failed verification.

    ``reason`` is a short code for logs and metrics. Clients should only ever see a generic
    401: telling an attacker which check failed helps them forge the next attempt.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AccessClaims:
    """The verified content of an access token."""

    subject: str
    scopes: frozenset[str]
    expires_at: datetime
    issued_at: datetime
    jti: str
    kind: str
    cameras: frozenset[str] | None  # None means every camera; an empty set means none


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int:  # bool is an int subclass; floats are not what we issue
        raise InvalidToken(f"bad {name}")
    return value


class TokenIssuer:
    """Issues and verifies RS256 access tokens.

    Args:
        keyring: Signs with its active key, verifies with any key it still holds.
        issuer: The ``iss`` value written and required.
        audience: The ``aud`` value written and required.
        access_ttl_s: Token lifetime. Short, because a JWT cannot be revoked before it expires.
        leeway_s: Clock skew tolerated between replicas when checking exp / nbf / iat.
        clock: Returns the current Unix time; injectable for tests.
    """

    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str,
        audience: str,
        access_ttl_s: int = 900,
        leeway_s: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience must be non-empty strings")
        if not 1 <= access_ttl_s <= 86_400:
            raise ValueError(f"access_ttl_s must be in [1, 86400], got {access_ttl_s}")
        if not 0 <= leeway_s <= 60:
            raise ValueError(f"leeway_s must be in [0, 60] (keep clocks in sync), got {leeway_s}")
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._ttl = access_ttl_s
        self._leeway = leeway_s
        self._clock = clock

    def issue_access(
        self,
        subject: str,
        scopes: Collection[str],
        *,
        cameras: Collection[str] | None,
        kind: str = "user",
    ) -> str:
        """Signs an access token.

        Args:
            subject: The principal's id (``sub``).
            scopes: Granted scopes; none may contain whitespace.
            cameras: Camera ids / ``group:<name>`` entries the holder may see, or None for every
                camera. Required, so no caller grants every camera by forgetting an argument.
            kind: "user", "apikey" or "session".

        Returns:
            The compact JWS.
        """
        if not subject:
            raise ValueError("subject must be a non-empty string")
        if kind not in TOKEN_KINDS:
            raise ValueError(f"kind must be one of {sorted(TOKEN_KINDS)}, got {kind!r}")
        if any(not s or s.split() != [s] for s in scopes):
            raise ValueError("scopes must be non-empty and contain no whitespace")
        now = int(self._clock())
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(sorted(set(scopes))),
            "kind": kind,
        }
        if cameras is not None:
            payload["cams"] = sorted(set(cameras))
        active = self._keyring.active
        return jwt.encode(
            payload,
            active.private_key,
            algorithm=_ALGORITHM,
            headers={"kid": active.kid, "typ": _TYP},
        )

    def decode_access(self, token: str) -> AccessClaims:
        """Verifies an access token and returns its claims.

        Raises:
            InvalidToken: The token is malformed, unsigned, signed with another algorithm or an
                unknown key, expired, not yet valid, or meant for another issuer or audience.
        """
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise InvalidToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        # Checked before any key is chosen, and pinned again in jwt.decode: "none" and HS256
        # (an attacker using our public RSA key as the HMAC secret) never reach a verifier.
        if header.get("alg") != _ALGORITHM:
            raise InvalidToken("bad algorithm")
        if header.get("typ") != _TYP:
            raise InvalidToken("bad type")
        kid = header.get("kid")
        key = self._keyring.public_keys().get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown key")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                # Time claims are checked below against the injected clock, not PyJWT's own.
                options={
                    "require": _REQUIRED,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "strict_aud": True,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing {exc.claim}") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("bad audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("bad issuer") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        return self._claims(payload)

    def _claims(self, payload: dict[str, Any]) -> AccessClaims:
        now = self._clock()
        exp, iat, nbf = (_int_claim(payload, n) for n in ("exp", "iat", "nbf"))
        if exp <= now - self._leeway:
            raise InvalidToken("expired")
        if nbf > now + self._leeway or iat > now + self._leeway:
            raise InvalidToken("not yet valid")
        if exp - iat > self._ttl:
            # Nothing we issue lives longer; a longer token was minted elsewhere or under an
            # older, looser configuration, and should not outlive today's policy.
            raise InvalidToken("lifetime too long")
        sub, jti, scope = payload.get("sub"), payload.get("jti"), payload.get("scope", "")
        kind = payload.get("kind")
        if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
            raise InvalidToken("bad subject")
        if not isinstance(scope, str):
            raise InvalidToken("bad scope")
        if kind not in TOKEN_KINDS:
            raise InvalidToken("bad kind")
        cams = payload.get("cams")
        if cams is not None and (
            not isinstance(cams, list) or not all(isinstance(c, str) for c in cams)
        ):
            raise InvalidToken("bad cams")
        return AccessClaims(
            subject=sub,
            scopes=frozenset(scope.split()),
            expires_at=datetime.fromtimestamp(exp, UTC),
            issued_at=datetime.fromtimestamp(iat, UTC),
            jti=jti,
            kind=str(kind),
            cameras=None if cams is None else frozenset(cams),
        )


def new_opaque_token(prefix: str) -> tuple[str, str]:
    """Creates an opaque bearer token such as a refresh token ("srt_") or API key ("sk_").

    The prefix makes leaked tokens easy to recognise (secret scanners, logs) and to route.

    Returns:
        ``(token, sha256_hex)``: hand the token to the client once, store only the hash.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix must look like 'srt_' or 'sk_', got {prefix!r}")
    token = prefix + secrets.token_urlsafe(_OPAQUE_BYTES)
    return token, hash_opaque(token)


def hash_opaque(token: str) -> str:
    """SHA-256 hex of an opaque token.

    A plain hash, not argon2: the token carries 256 random bits, so there is nothing to
    brute-force, and a deterministic hash lets the store look the token up by index.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def opaque_matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` hashes to ``stored_hash``, compared in constant time."""
    expected = stored_hash.lower().encode("utf-8")
    return hmac.compare_digest(hash_opaque(token).encode("ascii"), expected)
