"""Web Push routes: the VAPID public key, and each user's own browser subscriptions.

Everything needs ``alerts:read``: a subscription only brings the alerts its user may read
anyway (their role's scopes and camera limits are checked when each push is planned and sent,
``sentinel.notify.push``). Subscriptions belong to users (an API key gets 403), and a user
lists and deletes only their own (another's answers 404). An endpoint must pass the outbound
guard (https, a public address) as webhook targets do; ``notify.allow_http`` and
``notify.allow_hosts`` relax it for local push services (tests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Response, Security
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import NotifyServices, Services, ServicesDep
from sentinel.api.notify import notify_services, unprocessable
from sentinel.api.security import authorize
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ALERTS_READ, Principal
from sentinel.notify.ssrf import Blocked, UrlPolicy, check_url, system_resolver
from sentinel.notify.webpush import AUTH_LEN, VapidKey, b64url_decode, load_point
from sentinel.store.push_repo import PushRepository, PushSubscriptionRecord, TooMany
from sentinel.store.push_tables import ENDPOINT_MAX

router = APIRouter(tags=["push"])

Reader = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])]
PushId = Annotated[str, Path(max_length=64)]


class PushKeysIn(StrictModel):
    """``PushSubscription.toJSON().keys``: base64url, as browsers send them."""

    p256dh: str = Field(min_length=80, max_length=100, description="The browser's P-256 key.")
    auth: str = Field(min_length=16, max_length=32, description="The 16-byte auth secret.")

    @field_validator("p256dh")
    @classmethod
    def _p256dh(cls, value: str) -> str:
        try:
            load_point(b64url_decode(value))
        except ValueError as exc:
            raise ValueError(f"p256dh must be an uncompressed P-256 point: {exc}") from exc
        return value

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
        except ValueError as exc:
            raise ValueError("auth must be base64url") from exc
        if len(raw) != AUTH_LEN:
            raise ValueError(f"auth must be {AUTH_LEN} bytes, got {len(raw)}")
        return value


class PushSubscriptionIn(StrictModel):
    """A browser's ``PushSubscription`` as JSON (``JSON.stringify(subscription)``)."""

    endpoint: str = Field(min_length=12, max_length=ENDPOINT_MAX)
    keys: PushKeysIn
    expirationTime: float | None = Field(  # noqa: N815 - the browser's name
        None, ge=0, le=2**53, description="Sent by browsers (epoch ms or null); not used."
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("endpoint must be an absolute https URL")
        if parts.username or parts.password or parts.fragment:
            raise ValueError("endpoint must not carry credentials or a fragment")
        if any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("endpoint must not contain spaces or control characters")
        return value


class PushSubscriptionPublic(BaseModel):
    id: str
    endpoint: str
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None
    failures: int
    last_error: str | None

    @classmethod
    def of(cls, rec: PushSubscriptionRecord) -> PushSubscriptionPublic:
        return cls(
            id=rec.id,
            endpoint=rec.endpoint,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
            last_sent_at=rec.last_sent_at,
            failures=rec.failures,
            last_error=rec.last_error,
        )


class VapidKeyPublic(BaseModel):
    public_key: str = Field(
        description="The applicationServerKey: the uncompressed P-256 point, base64url."
    )


def _vapid(notify: NotifyServices) -> VapidKey:
    if notify.vapid is None:
        raise HTTPException(503, "web push is off (notify.push_enabled)")
    return notify.vapid


async def _user(principal: Reader) -> Principal:
    """The caller, if a user: a dependency, so an API key gets 403 before its body is read."""
    if principal.kind != "user":
        raise HTTPException(403, "push subscriptions belong to users, not API keys")
    return principal


User = Annotated[Principal, Depends(_user)]


def _check_endpoint(endpoint: str, notify: NotifyServices) -> None:
    settings = notify.settings
    policy = UrlPolicy(
        allow_http=settings.allow_http,
        allow_hosts=frozenset(h.lower() for h in settings.allow_hosts),
        resolver=notify.resolver or system_resolver,
    )
    try:
        check_url(endpoint, policy)
    except Blocked as exc:
        raise unprocessable("endpoint", [f"refused: {exc}"]) from exc


def _store(services: Services) -> PushRepository:
    return PushRepository(services.engine)


@router.get("/push/vapid-key", response_model=VapidKeyPublic, summary="The Web Push VAPID key")
async def vapid_key(services: ServicesDep, principal: Reader) -> VapidKeyPublic:
    return VapidKeyPublic(public_key=_vapid(notify_services(services)).public_key)


@router.post(
    "/push/subscriptions",
    response_model=PushSubscriptionPublic,
    status_code=201,
    summary="Subscribe this browser to alert pushes",
    responses={200: {"description": "The endpoint was known: its keys were replaced."}},
)
async def subscribe(
    body: PushSubscriptionIn, response: Response, services: ServicesDep, user: User
) -> PushSubscriptionPublic:
    """Idempotent per endpoint: 201 for a new one, 200 for one already saved (its keys and
    owner replaced). 422 for a malformed subscription or an endpoint the outbound guard
    refuses; 409 past 32 subscriptions of one user."""
    user_id = user.subject
    notify = notify_services(services)
    _vapid(notify)
    await run_in_threadpool(_check_endpoint, body.endpoint, notify)
    try:
        rec, new = await run_in_threadpool(
            _store(services).save, user_id, body.endpoint, body.keys.p256dh, body.keys.auth
        )
    except TooMany as exc:
        raise HTTPException(409, str(exc)) from exc
    if not new:
        response.status_code = 200
    return PushSubscriptionPublic.of(rec)


@router.get(
    "/push/subscriptions",
    response_model=list[PushSubscriptionPublic],
    summary="My browsers' push subscriptions",
)
async def list_mine(services: ServicesDep, user: User) -> list[PushSubscriptionPublic]:
    rows = await run_in_threadpool(_store(services).list, user.subject)
    return [PushSubscriptionPublic.of(r) for r in rows]


@router.delete(
    "/push/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    summary="Unsubscribe one of my browsers",
)
async def unsubscribe(subscription_id: PushId, services: ServicesDep, user: User) -> Response:
    if not await run_in_threadpool(_store(services).delete, subscription_id, user.subject):
        raise HTTPException(404, "push subscription not found")
    return Response(status_code=204)
