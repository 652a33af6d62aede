"""Admin routes: users, API keys and the audit log.

Users and the audit log cover every camera, so camera-limited principals are refused there
(``authorize_every_camera``); API keys are camera-limited like their creators, and a limited
principal lists and revokes only its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, Security
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.domain.strict import StrictModel
from sentinel.gateway.passwords import WeakPassword, validate_password
from sentinel.gateway.roles import (
    ADMIN,
    APIKEYS_WRITE,
    AUDIT_READ,
    ROLE_SCOPES,
    USERS_ADMIN,
    Principal,
    Role,
    scopes_for,
)
from sentinel.gateway.tokens import new_opaque_token
from sentinel.store.api_key_repo import ApiKeyRecord
from sentinel.store.push_repo import PushRepository
from sentinel.store.security_repo import UserExists, UserRecord

router = APIRouter(tags=["admin"])

CameraScope = Annotated[
    list[Annotated[str, Field(pattern=r"^(group:)?[a-z0-9][a-z0-9_-]{0,63}$")]] | None,
    Field(max_length=256, description="Cameras (or group:<name>) the user may see; null = all."),
]


def _guard(*scopes: str) -> Any:
    from sentinel.api.security import authorize

    return Security(authorize, scopes=list(scopes))


def _every_camera(*scopes: str) -> Any:
    """The guard of a route over every camera: ``scopes``, and no camera limit."""
    from sentinel.api.security import authorize_every_camera

    return Security(authorize_every_camera, scopes=list(scopes))


def _key_owner(principal: Principal) -> str | None:
    """Whose keys ``principal`` manages: everyone's (None) only for an unlimited admin."""
    return None if principal.has(ADMIN) and principal.cameras is None else principal.subject


class UserCreate(StrictModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=1, max_length=1024)
    role: Role = Role.VIEWER
    cameras: CameraScope = None


class UserUpdate(StrictModel):
    password: str | None = Field(None, min_length=1, max_length=1024)
    role: Role | None = None
    cameras: CameraScope = None
    all_cameras: bool = Field(False, description="Lift the camera limit (cameras = all).")
    disabled: bool | None = None


class UserPublic(BaseModel):
    id: str
    username: str
    role: str
    cameras: list[str] | None
    disabled: bool
    mfa: bool
    created_at: datetime

    @classmethod
    def of(cls, u: UserRecord) -> UserPublic:
        return cls(
            id=u.id,
            username=u.username,
            role=u.role,
            cameras=u.cameras,
            disabled=u.disabled,
            mfa=u.totp_enabled,
            created_at=u.created_at,
        )


class ApiKeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.VIEWER
    scopes: list[str] | None = Field(None, max_length=32, description="Subset of the role's.")
    cameras: CameraScope = None


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    scopes: list[str]
    cameras: list[str] | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: ApiKeyRecord) -> ApiKeyPublic:
        return cls(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            role=k.role,
            scopes=list(k.scopes),
            cameras=k.cameras,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
            last_used_at=k.last_used_at,
        )


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="Shown once; only its hash is stored.")


class AuditEntry(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    client: str
    outcome: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: int | None


def _check_password(password: str, username: str) -> None:
    try:
        validate_password(password, username=username)
    except WeakPassword as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/users", response_model=list[UserPublic], summary="All users")
async def list_users(
    services: ServicesDep, _: Annotated[Principal, _every_camera(USERS_ADMIN)]
) -> Any:
    return [UserPublic.of(u) for u in await run_in_threadpool(services.security.users.list)]


@router.post("/users", response_model=UserPublic, status_code=201, summary="Create a user")
async def create_user(
    body: UserCreate, services: ServicesDep, _: Annotated[Principal, _every_camera(USERS_ADMIN)]
) -> UserPublic:
    sec = services.security
    _check_password(body.password, body.username)
    digest = await run_in_threadpool(sec.passwords.hash, body.password)
    try:
        user = await run_in_threadpool(
            sec.users.create, body.username.lower(), digest, body.role.value, body.cameras
        )
    except UserExists as exc:
        raise HTTPException(409, f"user {body.username} exists") from exc
    return UserPublic.of(user)


@router.patch("/users/{user_id}", response_model=UserPublic, summary="Change a user")
async def update_user(
    user_id: Annotated[str, Path(max_length=64)],
    body: UserUpdate,
    services: ServicesDep,
    principal: Annotated[Principal, _every_camera(USERS_ADMIN)],
) -> UserPublic:
    sec = services.security
    user = await run_in_threadpool(sec.users.get, user_id)
    if user is None:
        raise HTTPException(404, f"user {user_id} not found")
    changes: dict[str, Any] = {}
    if body.password is not None:
        _check_password(body.password, user.username)
        changes["password_hash"] = await run_in_threadpool(sec.passwords.hash, body.password)
    if body.role is not None:
        changes["role"] = body.role.value
    if body.all_cameras:
        changes["cameras"] = None
    elif body.cameras is not None:
        changes["cameras"] = body.cameras
    if body.disabled is not None:
        if body.disabled and user_id == principal.subject:
            raise HTTPException(409, "you cannot disable yourself")
        changes["disabled"] = body.disabled
    updated = await run_in_threadpool(lambda: sec.users.update(user_id, **changes))
    if updated is None:
        raise HTTPException(404, f"user {user_id} not found")
    if body.disabled or body.password is not None:
        await run_in_threadpool(sec.refresh.revoke_user, user_id, datetime.now(UTC))
    return UserPublic.of(updated)


@router.delete("/users/{user_id}", status_code=204, response_class=Response, summary="Delete")
async def delete_user(
    user_id: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    principal: Annotated[Principal, _every_camera(USERS_ADMIN)],
) -> Response:
    if user_id == principal.subject:
        raise HTTPException(409, "you cannot delete yourself")
    if not await run_in_threadpool(services.security.users.delete, user_id):
        raise HTTPException(404, f"user {user_id} not found")
    # Their browsers stop getting pushes (the notifier also skips users that are gone).
    await run_in_threadpool(PushRepository(services.engine).delete_user, user_id)
    return Response(status_code=204)


@router.get("/apikeys", response_model=list[ApiKeyPublic], summary="API keys")
async def list_keys(
    services: ServicesDep, principal: Annotated[Principal, _guard(APIKEYS_WRITE)]
) -> Any:
    owner = _key_owner(principal)
    keys = await run_in_threadpool(services.security.apikeys.list, owner)
    return [ApiKeyPublic.of(k) for k in keys]


@router.post("/apikeys", response_model=ApiKeyCreated, status_code=201, summary="New API key")
async def create_key(
    body: ApiKeyCreate,
    services: ServicesDep,
    principal: Annotated[Principal, _guard(APIKEYS_WRITE)],
) -> ApiKeyCreated:
    """A key never grants more than its creator holds: role, scopes and cameras are capped."""
    # A key minting keys would outlive its own revocation (and has no user row to own them).
    if principal.kind != "user" or principal.role is None:
        raise HTTPException(403, "only users create API keys")
    if not ROLE_SCOPES[body.role] <= ROLE_SCOPES[principal.role]:
        raise HTTPException(403, f"cannot create a key with role {body.role.value}")
    scopes = scopes_for(body.role, body.scopes) & principal.scopes
    cameras = body.cameras
    if principal.cameras is not None:
        if cameras is None:
            cameras = sorted(principal.cameras)
        elif not set(cameras) <= principal.cameras:
            raise HTTPException(403, "a key cannot see cameras its creator cannot")
    key, digest = new_opaque_token("sk_")
    record = await run_in_threadpool(
        services.security.apikeys.create,
        body.name,
        key[:8],
        digest,
        body.role.value,
        sorted(scopes),
        cameras,
        principal.subject,
    )
    return ApiKeyCreated(**ApiKeyPublic.of(record).model_dump(), key=key)


@router.delete("/apikeys/{key_id}", status_code=204, response_class=Response, summary="Revoke")
async def revoke_key(
    key_id: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    principal: Annotated[Principal, _guard(APIKEYS_WRITE)],
) -> Response:
    keys = services.security.apikeys
    owner = _key_owner(principal)
    mine = {k.id for k in await run_in_threadpool(keys.list, owner)}
    if key_id not in mine or not await run_in_threadpool(keys.revoke, key_id, datetime.now(UTC)):
        raise HTTPException(404, "API key not found")  # the id may be a hidden camera's key
    return Response(status_code=204)


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first")
async def audit_log(
    services: ServicesDep,
    _: Annotated[Principal, _every_camera(AUDIT_READ)],
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    records, next_cursor = await run_in_threadpool(
        lambda: services.security.audit.list(
            actor=actor,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    )
    items = [
        AuditEntry(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            action=r.action,
            target=r.target,
            client=r.client,
            outcome=r.outcome,
            detail=dict(r.detail),
        )
        for r in records
    ]
    return AuditPage(items=items, next_cursor=next_cursor)
