"""Who is calling, and may they: credentials → Principal → scope, camera and rate checks.

Every route declares its scopes with ``Security(authorize, scopes=[...])``; a route without
one is public, and the route→scope table test (tests/integration/test_route_scopes.py) fails
the build when a route loses its guard.

Credentials, in order: ``Authorization: Bearer <JWT>`` (users), ``X-API-Key`` (machines), the
``sentinel_session`` cookie (browsers; state-changing requests must echo the session's CSRF
token in ``X-CSRF-Token`` — a cross-site page can make the browser send the cookie, but cannot
read the token, so it cannot forge the header).
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.gateway.clients import client_address
from sentinel.gateway.keys import KeyRing
from sentinel.gateway.passwords import Passwords
from sentinel.gateway.ratelimit import BucketSpec, RateLimiter
from sentinel.gateway.roles import ALL_SCOPES, METRICS_READ, Principal, Role
from sentinel.gateway.secretbox import SecretBox
from sentinel.gateway.tokens import InvalidToken, TokenIssuer, hash_opaque
from sentinel.store.api_key_repo import ApiKeyRepository
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.repo import StoredEvent
from sentinel.store.security_repo import RefreshTokenRepository, UserRepository

SESSION_COOKIE = "sentinel_session"
CSRF_COOKIE = "sentinel_csrf"
CSRF_HEADER = "X-CSRF-Token"
API_KEY_HEADER = "X-API-Key"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
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


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


async def _principal_from_jwt(
    token: str, security: SecurityServices, request: Request, *, cookie: bool
) -> Principal:
    security.maybe_reload_keys()
    try:
        claims = security.issuer.decode_access(token)
    except InvalidToken as exc:
        if exc.reason != "unknown key" or not security.maybe_reload_keys(force=True):
            raise _unauthorized(f"invalid token: {exc.reason}") from exc
        try:
            claims = security.issuer.decode_access(token)
        except InvalidToken as again:
            raise _unauthorized(f"invalid token: {again.reason}") from again
    if cookie and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), claims.jti.encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
    user = await run_in_threadpool(security.users.get, claims.subject)
    if user is None or user.disabled:
        raise _unauthorized("user is disabled or gone")
    return Principal(
        subject=user.id,
        kind="user",
        role=Role(user.role),
        scopes=claims.scopes,
        cameras=frozenset(user.cameras) if user.cameras is not None else None,
    )


async def _principal_from_key(key: str, security: SecurityServices) -> Principal:
    record = await run_in_threadpool(security.apikeys.by_hash, hash_opaque(key))
    if record is None or record.revoked_at is not None:
        raise _unauthorized("invalid API key")
    return Principal(
        subject=f"apikey:{record.id}",
        kind="apikey",
        role=Role(record.role),
        scopes=frozenset(record.scopes),
        cameras=frozenset(record.cameras) if record.cameras is not None else None,
    )


async def identify(request: Request, security: SecurityServices) -> Principal:
    """The caller's principal, or ANONYMOUS when no credentials came."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Authorization must be `Bearer <token>`")
        return await _principal_from_jwt(token.strip(), security, request, cookie=False)
    key = request.headers.get(API_KEY_HEADER)
    if key:
        return await _principal_from_key(key, security)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _principal_from_jwt(cookie, security, request, cookie=True)
    return ANONYMOUS


def route_family(request: Request) -> str:
    """The rate-limit family of a request: the first path segment under /api/v1."""
    parts = [p for p in request.url.path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
        return parts[2]
    return parts[0] if parts else "root"


async def rate_limit(request: Request, security: SecurityServices, key: str) -> None:
    decision = await security.limiter.hit(key, security.limits.per_route)
    if not decision.allowed:
        raise HTTPException(
            429,
            "rate limit exceeded",
            headers={"Retry-After": str(max(1, math.ceil(decision.retry_after_s)))},
        )


# Declared for the OpenAPI document (and /docs' "Authorize" button); the credentials
# themselves are read in `identify`, which also accepts API keys and session cookies.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    scopes={scope: scope for scope in sorted(ALL_SCOPES)},
    auto_error=False,
)
api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    services: ServicesDep,
    _bearer: Annotated[str | None, Depends(oauth2_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Dependency of every guarded route: authenticates, checks scopes, rate-limits."""
    security = services.security
    principal = await identify(request, security)
    request.state.principal = principal
    if principal.kind == "anonymous":
        raise _unauthorized("authentication required")
    missing = [s for s in security_scopes.scopes if not principal.has(s)]
    if missing:
        raise HTTPException(403, f"missing scope: {' '.join(missing)}")
    await rate_limit(request, security, f"{principal.subject}:{route_family(request)}")
    return principal


async def optional_principal(request: Request, services: ServicesDep) -> Principal:
    """For public routes that show more to an authenticated caller (e.g. /health)."""
    try:
        principal = await identify(request, services.security)
    except HTTPException:
        return ANONYMOUS
    request.state.principal = principal
    return principal


OptionalPrincipal = Annotated[Principal, Depends(optional_principal)]


async def allowed_cameras(principal: Principal, services: Services) -> set[str] | None:
    """The camera ids ``principal`` may see; None means every camera.

    Groups resolve through the cameras' configs; a deleted camera's events stay visible only
    to principals that name its id.
    """
    if principal.cameras is None:
        return None
    rows = await run_in_threadpool(services.cameras.list)
    allowed = {c for c in principal.cameras if not c.startswith("group:")}
    allowed |= {cid for cid, cfg in rows if principal.can_see(cid, cfg.get("groups") or ())}
    return allowed


async def require_event(event_id: str, services: Services, principal: Principal) -> StoredEvent:
    """The event, if ``principal`` may see its camera; 404 otherwise (hidden or missing)."""
    ev = await run_in_threadpool(services.events.get, event_id)
    allowed = await allowed_cameras(principal, services)
    if ev is None or (allowed is not None and ev.camera_id not in allowed):
        raise HTTPException(404, "event not found")
    return ev


async def require_camera(principal: Principal, services: Services, camera_id: str) -> None:
    """404 (not 403: do not confirm that a hidden camera exists) unless visible."""
    allowed = await allowed_cameras(principal, services)
    if allowed is not None and camera_id not in allowed:
        raise HTTPException(404, "camera not found")


async def require_metrics(request: Request, services: ServicesDep) -> None:
    """Guard of /metrics: `metrics:read`, unless the deployment made metrics public."""
    if not services.security.metrics_public:
        await authorize(SecurityScopes([METRICS_READ]), request, services, None, None)
