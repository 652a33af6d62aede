"""Sign-in: OAuth2 password flow, refresh-token rotation, browser sessions, TOTP enrolment."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response, Security
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.api.gateway import CSRF_COOKIE, SESSION_COOKIE, SecurityServices, client_of
from sentinel.api.security import authorize
from sentinel.gateway.ratelimit import LimiterUnavailableError
from sentinel.gateway.roles import Principal, Role, scopes_for
from sentinel.gateway.tokens import hash_opaque, new_opaque_token
from sentinel.gateway.totp import new_totp_secret, provisioning_uri, verify_totp
from sentinel.store.security_repo import RefreshStatus, UserRecord

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])
LOGIN_RETRY_AFTER_S = 5  # about the route limiter's cooldown before it asks Redis again

_BAD_LOGIN = "incorrect username, password or one-time code"


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    refresh_token: str
    scope: str


class SessionResponse(BaseModel):
    csrf_token: str = Field(description="Send back in X-CSRF-Token on state-changing requests.")
    expires_in: int


class MeResponse(BaseModel):
    subject: str
    kind: str
    role: str | None
    scopes: list[str]
    cameras: list[str] | None


class MfaEnrollment(BaseModel):
    secret: str
    provisioning_uri: str


class MfaCode(BaseModel):
    code: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$")


async def _audit(
    security: SecurityServices,
    request: Request,
    actor: str,
    action: str,
    outcome: str,
    **detail: Any,
) -> None:
    await run_in_threadpool(
        security.audit.append,
        actor=actor,
        action=action,
        target="",
        client=client_of(request, security),
        outcome=outcome,
        detail=detail,
    )


async def _throttle_login(security: SecurityServices, request: Request, username: str) -> None:
    client = client_of(request, security)
    for key, spec in (
        (f"login:acct:{username}", security.limits.login_account),
        (f"login:client:{client}", security.limits.login_client),
    ):
        try:
            decision = await security.limiter.hit(key, spec)
        except LimiterUnavailableError as exc:
            # Fail closed: these buckets are the brute-force defence, and in-process ones would
            # start empty (forgetting the attacker's attempts) on every replica. Tokens already
            # issued, refresh and API keys keep working meanwhile.
            logger.warning("login refused: %s", exc)
            await _audit(security, request, username, "login", "unavailable")
            raise HTTPException(
                503,
                "sign-in is unavailable: its rate limiter cannot be reached; retry shortly",
                headers={"Retry-After": str(LOGIN_RETRY_AFTER_S)},
            ) from exc
        if not decision.allowed:
            await _audit(security, request, username, "login", "throttled")
            raise HTTPException(
                429,
                "too many login attempts",
                headers={"Retry-After": str(max(1, int(decision.retry_after_s + 0.999)))},
            )


async def _check_password_and_otp(
    security: SecurityServices, request: Request, username: str, password: str, otp: str | None
) -> UserRecord:
    await _throttle_login(security, request, username)
    user = await run_in_threadpool(security.users.by_username, username)
    if user is None:
        await run_in_threadpool(security.passwords.verify_dummy, password)
        ok = False
    else:
        ok = await run_in_threadpool(security.passwords.verify, user.password_hash, password)
    if not ok or user is None or user.disabled:
        await _audit(security, request, username, "login", "failure", reason="credentials")
        raise HTTPException(401, _BAD_LOGIN, headers={"WWW-Authenticate": "Bearer"})
    if user.totp_enabled:
        secret = security.secretbox.decrypt(user.totp_secret or "", aad=user.id.encode())
        step = verify_totp(secret, otp or "", now=time.time(), last_used_step=user.totp_last_step)
        if step is None or not await run_in_threadpool(
            security.users.consume_totp_step, user.id, step
        ):
            await _audit(security, request, username, "login", "failure", reason="otp")
            raise HTTPException(401, _BAD_LOGIN, headers={"WWW-Authenticate": "Bearer"})
    return user


def _scopes(user: UserRecord, requested: str | None) -> frozenset[str]:
    wanted = requested.split() if requested else None
    return scopes_for(Role(user.role), wanted)


async def _issue(
    security: SecurityServices,
    request: Request,
    user: UserRecord,
    scopes: frozenset[str],
    family_id: str | None = None,
) -> TokenResponse:
    access = security.issuer.issue_access(user.id, scopes, cameras=user.cameras, kind="user")
    refresh, refresh_hash = new_opaque_token("srt_")
    expires = datetime.now(UTC) + timedelta(seconds=security.refresh_ttl_s)
    await run_in_threadpool(
        security.refresh.create,
        user.id,
        refresh_hash,
        family_id or str(uuid.uuid4()),
        expires,
        client_of(request, security),
    )
    return TokenResponse(
        access_token=access,
        expires_in=security.access_ttl_s,
        refresh_token=refresh,
        scope=" ".join(sorted(scopes)),
    )


@router.post("/token", response_model=TokenResponse, summary="OAuth2 password flow")
async def token(
    request: Request,
    services: ServicesDep,
    username: Annotated[str, Form(min_length=1, max_length=128)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    scope: Annotated[str, Form(max_length=1024)] = "",
    otp: Annotated[str | None, Form(max_length=6, description="TOTP code, if enrolled")] = None,
) -> TokenResponse:
    security = services.security
    name = username.strip().lower()
    user = await _check_password_and_otp(security, request, name, password, otp)
    await _audit(security, request, user.id, "login", "success", username=name)
    return await _issue(security, request, user, _scopes(user, scope))


@router.post("/refresh", response_model=TokenResponse, summary="Rotate a refresh token")
async def refresh(
    request: Request,
    services: ServicesDep,
    refresh_token: Annotated[str, Form(min_length=8, max_length=256)],
) -> TokenResponse:
    security = services.security
    now = datetime.now(UTC)
    result = await run_in_threadpool(security.refresh.use, hash_opaque(refresh_token), now)
    if result.status is RefreshStatus.REUSED:
        # A used refresh token came back: it was stolen or leaked. Revoke its whole family so
        # neither the thief nor the victim can go on with it.
        assert result.family_id is not None
        await run_in_threadpool(security.refresh.revoke_family, result.family_id, now)
        await _audit(security, request, str(result.user_id), "refresh", "reused")
    if result.status is not RefreshStatus.OK or result.user_id is None:
        raise HTTPException(401, "invalid refresh token", headers={"WWW-Authenticate": "Bearer"})
    user = await run_in_threadpool(security.users.get, result.user_id)
    if user is None or user.disabled:
        raise HTTPException(401, "user is disabled or gone", headers={"WWW-Authenticate": "Bearer"})
    return await _issue(security, request, user, _scopes(user, None), result.family_id)


@router.post("/logout", status_code=204, response_class=Response, summary="Revoke sessions")
async def logout(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize)],
) -> Response:
    security = services.security
    if principal.kind == "user":
        await run_in_threadpool(security.refresh.revoke_user, principal.subject, datetime.now(UTC))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/session", response_model=SessionResponse, summary="Browser sign-in (cookie)")
async def session(
    request: Request,
    response: Response,
    services: ServicesDep,
    username: Annotated[str, Form(min_length=1, max_length=128)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    otp: Annotated[str | None, Form(max_length=6)] = None,
) -> SessionResponse:
    """Sets an httponly session cookie; the CSRF token comes back in the body and a cookie.

    SameSite=Strict already stops most cross-site requests; the CSRF token (the session
    token's jti, which a cross-site page cannot read) covers the rest.
    """
    security = services.security
    name = username.strip().lower()
    user = await _check_password_and_otp(security, request, name, password, otp)
    access = security.issuer.issue_access(
        user.id, _scopes(user, None), cameras=user.cameras, kind="session"
    )
    claims = security.issuer.decode_access(access)
    ttl = security.access_ttl_s
    response.set_cookie(
        SESSION_COOKIE,
        access,
        max_age=ttl,
        httponly=True,
        samesite="strict",
        secure=security.secure_cookies,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        claims.jti,
        max_age=ttl,
        httponly=False,
        samesite="strict",
        secure=security.secure_cookies,
        path="/",
    )
    await _audit(security, request, user.id, "session", "success", username=name)
    return SessionResponse(csrf_token=claims.jti, expires_in=ttl)


@router.get("/me", response_model=MeResponse, summary="Who am I")
async def me(principal: Annotated[Principal, Security(authorize)]) -> MeResponse:
    return MeResponse(
        subject=principal.subject,
        kind=principal.kind,
        role=principal.role.value if principal.role else None,
        scopes=sorted(principal.scopes),
        cameras=sorted(principal.cameras) if principal.cameras is not None else None,
    )


def _user_only(principal: Principal) -> None:
    if principal.kind != "user":
        raise HTTPException(403, "only users can enrol a one-time-code device")


@router.post("/mfa/enroll", response_model=MfaEnrollment, summary="Start TOTP enrolment")
async def mfa_enroll(
    services: ServicesDep, principal: Annotated[Principal, Security(authorize)]
) -> MfaEnrollment:
    _user_only(principal)
    security = services.security
    user = await run_in_threadpool(security.users.get, principal.subject)
    assert user is not None
    if user.totp_enabled:
        raise HTTPException(409, "a one-time-code device is already enrolled")
    secret = new_totp_secret()
    sealed = security.secretbox.encrypt(secret, aad=user.id.encode())
    await run_in_threadpool(security.users.set_totp, user.id, sealed, False)
    return MfaEnrollment(secret=secret, provisioning_uri=provisioning_uri(secret, user.username))


@router.post("/mfa/confirm", status_code=204, response_class=Response, summary="Confirm TOTP")
async def mfa_confirm(
    body: MfaCode, services: ServicesDep, principal: Annotated[Principal, Security(authorize)]
) -> Response:
    _user_only(principal)
    security = services.security
    user = await run_in_threadpool(security.users.get, principal.subject)
    assert user is not None
    if user.totp_secret is None or user.totp_enabled:
        raise HTTPException(409, "no enrolment is pending")
    secret = security.secretbox.decrypt(user.totp_secret, aad=user.id.encode())
    step = verify_totp(secret, body.code, now=time.time(), last_used_step=user.totp_last_step)
    if step is None or not await run_in_threadpool(security.users.consume_totp_step, user.id, step):
        raise HTTPException(400, "wrong one-time code")
    await run_in_threadpool(security.users.set_totp, user.id, user.totp_secret, True)
    return Response(status_code=204)
