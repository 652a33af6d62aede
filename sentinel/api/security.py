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
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.gateway import (
    ANONYMOUS,
    API_KEY_HEADER,
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    SecurityServices,
)
from sentinel.gateway.roles import ALL_SCOPES, METRICS_READ, Principal, Role
from sentinel.gateway.tokens import InvalidToken, hash_opaque
from sentinel.store.repo import StoredEvent


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


async def _principal_from_jwt(
    token: str, security: SecurityServices, request: HTTPConnection, *, cookie: bool
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
    # A WebSocket handshake is a GET (its scope has no method); the live socket checks the
    # Origin of cookie-authenticated handshakes instead (sentinel/api/live.py).
    if cookie and request.scope.get("method", "GET") not in SAFE_METHODS:
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


async def identify(request: HTTPConnection, security: SecurityServices) -> Principal:
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
    # Fails open to per-replica buckets when Redis is down (never a 500): the caller is
    # authenticated, these buckets guard capacity, and an outage of a cache should not take
    # the whole API down with it. Logins fail closed instead (auth._throttle_login).
    decision = await security.route_limiter.hit(key, security.limits.per_route)
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


async def authorize_every_camera(
    principal: Annotated[Principal, Security(authorize)],
) -> Principal:
    """Guard of routes over every camera at once: ``Security(authorize_every_camera, scopes=…)``.

    Users and their camera lists, the audit log, the prompts and experiments that judge every
    camera's alerts: none of these can be cut down to some cameras, and managing users would let
    a limited admin lift its own limit. So a camera-limited principal gets 403 here whatever its
    scopes (the scopes given to this guard are checked first, by ``authorize``).
    """
    if principal.cameras is not None:
        raise HTTPException(403, "this route covers every camera; your access is camera-limited")
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


async def require_metrics(request: Request, services: ServicesDep) -> Principal | None:
    """Guard of /metrics: `metrics:read`, unless the deployment made metrics public.

    Returns the caller, whose camera limits scope the series; None in ``metrics_public`` mode,
    where every series is shown to everyone: credentials there would scope nothing, since any
    caller can leave them off (see ``AuthSettings.metrics_public``).
    """
    if services.security.metrics_public:
        return None
    return await authorize(SecurityScopes([METRICS_READ]), request, services, None, None)
