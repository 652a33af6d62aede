"""The gateway's parts as the API holds them: cookie and header names, rate-limit settings and
``SecurityServices`` (keys, tokens, users, audit, limiter), injected through ``Services.security``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from sentinel.gateway.clients import client_address
from sentinel.gateway.keys import KeyRing
from sentinel.gateway.passwords import Passwords
from sentinel.gateway.ratelimit import BucketSpec, FailoverRateLimiter, RateLimiter
from sentinel.gateway.roles import Principal
from sentinel.gateway.secretbox import SecretBox
from sentinel.gateway.tokens import TokenIssuer
from sentinel.store.api_key_repo import ApiKeyRepository
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.security_repo import RefreshTokenRepository, UserRepository

SESSION_COOKIE = "sentinel_session"
CSRF_COOKIE = "sentinel_csrf"
CSRF_HEADER = "X-CSRF-Token"
API_KEY_HEADER = "X-API-Key"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ANONYMOUS = Principal(
    subject="anonymous", kind="anonymous", role=None, scopes=frozenset(), cameras=frozenset()
)


@dataclass
class RateLimits:
    """Token buckets: per principal and route family, and for logins."""

    per_route: BucketSpec = field(default_factory=lambda: BucketSpec(rate_per_s=20.0, burst=60))
    login_account: BucketSpec = field(default_factory=lambda: BucketSpec(5 / 300.0, 5))
    login_client: BucketSpec = field(default_factory=lambda: BucketSpec(20 / 300.0, 20))


@dataclass
class SecurityServices:
    """The gateway's parts, injected through ``Services.security``."""

    keyring: KeyRing
    issuer: TokenIssuer
    passwords: Passwords
    users: UserRepository
    refresh: RefreshTokenRepository
    apikeys: ApiKeyRepository
    audit: AuditRepository
    limiter: RateLimiter
    secretbox: SecretBox
    trusted_proxies: list[str] = field(default_factory=list)
    access_ttl_s: int = 900
    refresh_ttl_s: int = 14 * 24 * 3600
    limits: RateLimits = field(default_factory=RateLimits)
    metrics_public: bool = False
    secure_cookies: bool = False
    max_body_bytes: int = 1 << 20
    max_query_bytes: int = 4096
    key_reload_interval_s: float = 30.0
    _keys_checked_at: float = 0.0
    # The per-route buckets: ``limiter``, or in-process ones while it is unavailable (see
    # FailoverRateLimiter for why these fail open and logins fail closed).
    route_limiter: FailoverRateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.route_limiter = FailoverRateLimiter(self.limiter)

    def maybe_reload_keys(self, *, force: bool = False) -> bool:
        """Picks up keys rotated by another process (`sentinel keys rotate`, another replica).

        Checked every ``key_reload_interval_s`` (so this replica signs with the new active
        key soon after a rotation), or at once — at most every 2 s — when a token names a key
        this replica has not seen yet.
        """
        now = time.monotonic()
        wait = 2.0 if force else self.key_reload_interval_s
        if now - self._keys_checked_at < wait:
            return False
        self._keys_checked_at = now
        return self.keyring.reload()


def client_of(request: Request, security: SecurityServices) -> str:
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), security.trusted_proxies)


def client_address_of_scope(scope: Any, security: SecurityServices) -> str:
    client = scope.get("client")
    peer = client[0] if client else None
    forwarded = None
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    return client_address(peer, forwarded, security.trusted_proxies)
