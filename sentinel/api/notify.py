"""Notification routes: subscriptions and templates (with preview). Deliveries, test sends and
the signed routes (the SMS status callback, media links) are in ``notify_delivery``.

Reading needs ``alerts:read``; writing subscriptions ``alerts:write``; writing templates and
sending test notifications ``admin``. Camera limits hold as everywhere: a camera-limited
principal sees the subscriptions whose cameras are all its own (a subscription for every camera
is hidden from it) and the deliveries of its cameras' alerts, and may write only subscriptions
naming its own cameras (or its own ``group:`` entries).

Two routes are public and authenticated by signatures instead: the media links (an HMAC over
kind, alert and expiry, see ``sentinel.notify.signing``) and the SMS status callback (Twilio's
``X-Twilio-Signature``, an HMAC-SHA1 under the auth token over the URL and the sorted form).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import NotifyServices, Services, ServicesDep
from sentinel.api.security import allowed_cameras, authorize
from sentinel.domain.alerts import Severity
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ADMIN, ALERTS_READ, ALERTS_WRITE, GROUP_PREFIX, Principal
from sentinel.notify.channels import check_apprise_url
from sentinel.notify.ssrf import Blocked, UrlPolicy, check_url, system_resolver
from sentinel.notify.subscriptions import AlertView, Channel, Subscription, new_subscription_id
from sentinel.notify.templates import TemplateError, alert_context, render, validate
from sentinel.store.notify_repo import (
    NotifyRepository,
    StoredSubscription,
    StoredTemplate,
    VersionConflict,
)

router = APIRouter(tags=["notifications"])

Reader = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])]
Writer = Annotated[Principal, Security(authorize, scopes=[ALERTS_WRITE])]
Admin = Annotated[Principal, Security(authorize, scopes=[ADMIN])]
SubId = Annotated[str, Path(max_length=64)]
TemplateId = Annotated[str, Path(max_length=64)]


def unprocessable(field: str, problems: list[str]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", field), "msg": p, "type": "value_error"} for p in problems]
    )


def notify_services(services: Services) -> NotifyServices:
    if services.notify is None:
        raise HTTPException(503, "the notifier is not configured")
    return services.notify


def store(services: Services) -> NotifyRepository:
    return NotifyRepository(services.engine)


# -- subscriptions ---------------------------------------------------------------------------


class SubscriptionPublic(Subscription):
    id: str
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, stored: StoredSubscription) -> SubscriptionPublic:
        return cls(
            **stored.body,
            id=stored.id,
            created_by=stored.created_by,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
        )


def _visible(sub: dict[str, Any], principal: Principal, allowed: set[str] | None) -> bool:
    if allowed is None:
        return True
    cams, groups = set(sub.get("cameras") or ()), set(sub.get("camera_groups") or ())
    if not cams and not groups:
        return False
    own_groups = {
        c.removeprefix(GROUP_PREFIX) for c in principal.cameras or () if c.startswith(GROUP_PREFIX)
    }
    return cams <= allowed and groups <= own_groups


def _check_writable(sub: Subscription, principal: Principal, allowed: set[str] | None) -> None:
    if allowed is None:
        return
    if not sub.cameras and not sub.camera_groups:
        raise HTTPException(403, "a subscription to every camera needs access to every camera")
    if not _visible(sub.model_dump(), principal, allowed):
        raise HTTPException(403, "the subscription names cameras outside your access")


def check_target(sub: Subscription, services: Services) -> None:
    """A webhook's (or an Apprise) URL must pass the outbound guard when saved (and again
    when sent)."""
    if sub.channel not in (Channel.WEBHOOK, Channel.APPRISE):
        return
    notify = notify_services(services)
    settings = notify.settings
    policy = UrlPolicy(
        allow_http=settings.allow_http,
        allow_hosts=frozenset(h.lower() for h in settings.allow_hosts),
        resolver=notify.resolver or system_resolver,
    )
    try:
        if sub.channel is Channel.APPRISE:
            check_apprise_url(sub.target, policy)
        else:
            check_url(sub.target, policy)
    except Blocked as exc:
        raise unprocessable("target", [f"refused: {exc}"]) from exc


async def _require_sub(
    sub_id: str, services: Services, principal: Principal
) -> tuple[StoredSubscription, set[str] | None]:
    stored = await run_in_threadpool(store(services).get_subscription, sub_id)
    allowed = await allowed_cameras(principal, services)
    if stored is None or not _visible(stored.body, principal, allowed):
        raise HTTPException(404, "subscription not found")
    return stored, allowed


@router.get(
    "/notifications/subscriptions",
    response_model=list[SubscriptionPublic],
    summary="Notification subscriptions",
)
async def list_subscriptions(services: ServicesDep, principal: Reader) -> list[SubscriptionPublic]:
    allowed = await allowed_cameras(principal, services)
    stored = await run_in_threadpool(store(services).subscriptions)
    return [SubscriptionPublic.of(s) for s in stored if _visible(s.body, principal, allowed)]


@router.post(
    "/notifications/subscriptions",
    response_model=SubscriptionPublic,
    status_code=201,
    summary="Subscribe someone to alerts on a channel",
)
async def create_subscription(
    body: Subscription, services: ServicesDep, principal: Writer
) -> SubscriptionPublic:
    """422 when a webhook target is refused by the outbound guard (https only unless
    ``notify.allow_http``; no private, loopback, link-local or metadata address)."""
    allowed = await allowed_cameras(principal, services)
    _check_writable(body, principal, allowed)
    check_target(body, services)
    await _check_template(body.template_id, services)
    stored = await run_in_threadpool(
        store(services).put_subscription,
        new_subscription_id(),
        body.model_dump(mode="json"),
        principal.subject,
        create=True,
    )
    assert stored is not None
    return SubscriptionPublic.of(stored)


@router.get(
    "/notifications/subscriptions/{subscription_id}",
    response_model=SubscriptionPublic,
    summary="One subscription",
)
async def get_subscription(
    subscription_id: SubId, services: ServicesDep, principal: Reader
) -> SubscriptionPublic:
    stored, _ = await _require_sub(subscription_id, services, principal)
    return SubscriptionPublic.of(stored)


@router.put(
    "/notifications/subscriptions/{subscription_id}",
    response_model=SubscriptionPublic,
    summary="Replace a subscription",
)
async def update_subscription(
    subscription_id: SubId, body: Subscription, services: ServicesDep, principal: Writer
) -> SubscriptionPublic:
    _, allowed = await _require_sub(subscription_id, services, principal)
    _check_writable(body, principal, allowed)
    check_target(body, services)
    await _check_template(body.template_id, services)
    stored = await run_in_threadpool(
        store(services).put_subscription,
        subscription_id,
        body.model_dump(mode="json"),
        principal.subject,
        create=False,
    )
    if stored is None:
        raise HTTPException(404, "subscription not found")
    return SubscriptionPublic.of(stored)


@router.delete(
    "/notifications/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a subscription",
)
async def delete_subscription(
    subscription_id: SubId, services: ServicesDep, principal: Writer
) -> Response:
    await _require_sub(subscription_id, services, principal)
    await run_in_threadpool(store(services).delete_subscription, subscription_id)
    return Response(status_code=204)


# -- templates -------------------------------------------------------------------------------


class TemplateIn(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Channel | None = Field(None, description="The channel it is meant for; null: any.")
    subject: str = Field(max_length=2000)
    body: str = Field(max_length=20000)


class TemplateUpdate(TemplateIn):
    version: int = Field(
        ge=1, le=2**31 - 1, description="The version being edited (409 if not current)."
    )


class TemplatePublic(BaseModel):
    id: str
    name: str
    channel: str | None
    version: int
    subject: str
    body: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, t: StoredTemplate) -> TemplatePublic:
        return cls(
            id=t.id,
            name=t.name,
            channel=t.channel,
            version=t.version,
            subject=t.subject,
            body=t.body,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )


def _validated(body: TemplateIn) -> None:
    try:
        validate(body.subject, body.body)
    except TemplateError as exc:
        raise unprocessable("body", exc.problems) from exc


async def _check_template(template_id: str | None, services: Services) -> None:
    if template_id is None:
        return
    if await run_in_threadpool(store(services).get_template, template_id) is None:
        raise unprocessable("template_id", [f"no template {template_id!r}"])


@router.get(
    "/notifications/templates", response_model=list[TemplatePublic], summary="Message templates"
)
async def list_templates(services: ServicesDep, principal: Reader) -> list[TemplatePublic]:
    return [TemplatePublic.of(t) for t in await run_in_threadpool(store(services).templates)]


@router.post(
    "/notifications/templates",
    response_model=TemplatePublic,
    status_code=201,
    summary="Create a template (validated: syntax and variables)",
)
async def create_template(
    body: TemplateIn, services: ServicesDep, principal: Admin
) -> TemplatePublic:
    _validated(body)
    channel = None if body.channel is None else str(body.channel)
    created = await run_in_threadpool(
        store(services).create_template,
        "tpl_" + uuid.uuid4().hex[:16],
        body.name,
        channel,
        body.subject,
        body.body,
        principal.subject,
    )
    return TemplatePublic.of(created)


async def require_template(template_id: str, services: Services) -> StoredTemplate:
    found = await run_in_threadpool(store(services).get_template, template_id)
    if found is None:
        raise HTTPException(404, "template not found")
    return found


@router.get(
    "/notifications/templates/{template_id}", response_model=TemplatePublic, summary="One template"
)
async def get_template(
    template_id: TemplateId, services: ServicesDep, principal: Reader
) -> TemplatePublic:
    return TemplatePublic.of(await require_template(template_id, services))


@router.put(
    "/notifications/templates/{template_id}",
    response_model=TemplatePublic,
    summary="Edit a template (stored as its next version)",
)
async def update_template(
    template_id: TemplateId, body: TemplateUpdate, services: ServicesDep, principal: Admin
) -> TemplatePublic:
    await require_template(template_id, services)
    _validated(body)
    channel = None if body.channel is None else str(body.channel)
    try:
        updated = await run_in_threadpool(
            store(services).update_template,
            template_id,
            body.version,
            body.name,
            channel,
            body.subject,
            body.body,
            principal.subject,
        )
    except VersionConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    if updated is None:
        raise HTTPException(404, "template not found")
    return TemplatePublic.of(updated)


@router.delete(
    "/notifications/templates/{template_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a template",
)
async def delete_template(
    template_id: TemplateId, services: ServicesDep, principal: Admin
) -> Response:
    if not await run_in_threadpool(store(services).delete_template, template_id):
        raise HTTPException(404, "template not found")
    return Response(status_code=204)


class SampleAlert(StrictModel):
    """The alert a preview renders (defaults: a person at the gate)."""

    camera_id: str = Field("gate", min_length=1, max_length=64)
    label: str = Field("person", min_length=1, max_length=64)
    severity: Severity = Severity.HIGH
    summary: str = Field("A person at the gate after hours", max_length=2000)
    count: int = Field(1, ge=1, le=100, description="Render as a digest of this many alerts.")


class Preview(BaseModel):
    subject: str
    body: str


def sample_view(sample: SampleAlert, now: datetime) -> AlertView:
    return AlertView(
        id="sample-alert",
        camera_id=sample.camera_id,
        label=sample.label,
        severity=sample.severity,
        summary=sample.summary,
        status="open",
        created_at=now,
        reasons=("sample",),
    )


def render_context(view: AlertView, count: int, base_url: str) -> dict[str, Any]:
    one = alert_context(view)
    return {
        "alert": one,
        "alerts": [one] * count,
        "count": count,
        "kind": "digest" if count > 1 else "new",
        "recipient": "preview",
        "snapshot_url": f"{base_url}/api/v1/notifications/media/snapshot/{view.id}?exp=0&sig=…",
        "clip_url": f"{base_url}/api/v1/notifications/media/clip/{view.id}?exp=0&sig=…",
        "alert_url": f"{base_url}/api/v1/alerts/{view.id}",
    }


@router.post(
    "/notifications/templates/{template_id}/preview",
    response_model=Preview,
    summary="Render a template with a sample alert",
)
async def preview_template(
    template_id: TemplateId,
    services: ServicesDep,
    principal: Reader,
    body: SampleAlert | None = None,
) -> Preview:
    tpl = await require_template(template_id, services)
    sample = body or SampleAlert()
    base = services.notify.settings.public_url if services.notify else "http://127.0.0.1:8000"
    ctx = render_context(sample_view(sample, datetime.now(UTC)), sample.count, base.rstrip("/"))
    try:
        out = render(tpl.subject, tpl.body, ctx)
    except TemplateError as exc:
        raise unprocessable("body", exc.problems) from exc
    return Preview(subject=out.subject, body=out.body)
