"""Notification routes: subscriptions, templates (with preview), deliveries, test sends, the
SMS provider's status callback and the signed media links of messages.

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

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import NotifyServices, Services, ServicesDep
from sentinel.api.media import ranged_response
from sentinel.api.recordings import clip_around, require_recordings
from sentinel.api.security import allowed_cameras, authorize
from sentinel.domain.alerts import Severity
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ADMIN, ALERTS_READ, ALERTS_WRITE, GROUP_PREFIX, Principal
from sentinel.notify.channels import DeliveryError, OutMessage, check_apprise_url
from sentinel.notify.policy import STATES
from sentinel.notify.signing import verify_link
from sentinel.notify.ssrf import Blocked, UrlPolicy, check_url
from sentinel.notify.subscriptions import AlertView, Channel, Subscription, new_subscription_id
from sentinel.notify.templates import (
    DEFAULT_TEMPLATES,
    TemplateError,
    alert_context,
    render,
    validate,
)
from sentinel.store.notify_repo import (
    DeliveryRecord,
    NotifyRepository,
    StoredSubscription,
    StoredTemplate,
    VersionConflict,
)
from sentinel.store.objects import ObjectNotFound
from sentinel.store.sql import InvalidCursor

router = APIRouter(tags=["notifications"])

Reader = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])]
Writer = Annotated[Principal, Security(authorize, scopes=[ALERTS_WRITE])]
Admin = Annotated[Principal, Security(authorize, scopes=[ADMIN])]
SubId = Annotated[str, Path(max_length=64)]
TemplateId = Annotated[str, Path(max_length=64)]


def _unprocessable(field: str, problems: list[str]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", field), "msg": p, "type": "value_error"} for p in problems]
    )


def _notify(services: Services) -> NotifyServices:
    if services.notify is None:
        raise HTTPException(503, "the notifier is not configured")
    return services.notify


def _repo(services: Services) -> NotifyRepository:
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


def _check_target(sub: Subscription, services: Services) -> None:
    """A webhook's (or an Apprise) URL must pass the outbound guard when saved (and again
    when sent)."""
    if sub.channel not in (Channel.WEBHOOK, Channel.APPRISE):
        return
    settings = _notify(services).settings
    policy = UrlPolicy(
        allow_http=settings.allow_http,
        allow_hosts=frozenset(h.lower() for h in settings.allow_hosts),
    )
    try:
        if sub.channel is Channel.APPRISE:
            check_apprise_url(sub.target, policy)
        else:
            check_url(sub.target, policy)
    except Blocked as exc:
        raise _unprocessable("target", [f"refused: {exc}"]) from exc


async def _require_sub(
    sub_id: str, services: Services, principal: Principal
) -> tuple[StoredSubscription, set[str] | None]:
    stored = await run_in_threadpool(_repo(services).get_subscription, sub_id)
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
    stored = await run_in_threadpool(_repo(services).subscriptions)
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
    _check_target(body, services)
    await _check_template(body.template_id, services)
    stored = await run_in_threadpool(
        _repo(services).put_subscription,
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
    _check_target(body, services)
    await _check_template(body.template_id, services)
    stored = await run_in_threadpool(
        _repo(services).put_subscription,
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
    await run_in_threadpool(_repo(services).delete_subscription, subscription_id)
    return Response(status_code=204)


# -- templates -------------------------------------------------------------------------------


class TemplateIn(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Channel | None = Field(None, description="The channel it is meant for; null: any.")
    subject: str = Field(max_length=2000)
    body: str = Field(max_length=20000)


class TemplateUpdate(TemplateIn):
    version: int = Field(ge=1, description="The version being edited (409 if not current).")


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
        raise _unprocessable("body", exc.problems) from exc


async def _check_template(template_id: str | None, services: Services) -> None:
    if template_id is None:
        return
    if await run_in_threadpool(_repo(services).get_template, template_id) is None:
        raise _unprocessable("template_id", [f"no template {template_id!r}"])


@router.get(
    "/notifications/templates", response_model=list[TemplatePublic], summary="Message templates"
)
async def list_templates(services: ServicesDep, principal: Reader) -> list[TemplatePublic]:
    return [TemplatePublic.of(t) for t in await run_in_threadpool(_repo(services).templates)]


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
        _repo(services).create_template,
        "tpl_" + uuid.uuid4().hex[:16],
        body.name,
        channel,
        body.subject,
        body.body,
        principal.subject,
    )
    return TemplatePublic.of(created)


async def _require_template(template_id: str, services: Services) -> StoredTemplate:
    found = await run_in_threadpool(_repo(services).get_template, template_id)
    if found is None:
        raise HTTPException(404, "template not found")
    return found


@router.get(
    "/notifications/templates/{template_id}", response_model=TemplatePublic, summary="One template"
)
async def get_template(
    template_id: TemplateId, services: ServicesDep, principal: Reader
) -> TemplatePublic:
    return TemplatePublic.of(await _require_template(template_id, services))


@router.put(
    "/notifications/templates/{template_id}",
    response_model=TemplatePublic,
    summary="Edit a template (stored as its next version)",
)
async def update_template(
    template_id: TemplateId, body: TemplateUpdate, services: ServicesDep, principal: Admin
) -> TemplatePublic:
    await _require_template(template_id, services)
    _validated(body)
    channel = None if body.channel is None else str(body.channel)
    try:
        updated = await run_in_threadpool(
            _repo(services).update_template,
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
    if not await run_in_threadpool(_repo(services).delete_template, template_id):
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


def _sample(sample: SampleAlert, now: datetime) -> AlertView:
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


def _context(view: AlertView, count: int, base_url: str) -> dict[str, Any]:
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
    tpl = await _require_template(template_id, services)
    sample = body or SampleAlert()
    base = services.notify.settings.public_url if services.notify else "http://127.0.0.1:8000"
    ctx = _context(_sample(sample, datetime.now(UTC)), sample.count, base.rstrip("/"))
    try:
        out = render(tpl.subject, tpl.body, ctx)
    except TemplateError as exc:
        raise _unprocessable("body", exc.problems) from exc
    return Preview(subject=out.subject, body=out.body)


# -- deliveries ------------------------------------------------------------------------------


class DeliveryPublic(BaseModel):
    id: str
    key: str = Field(description="The idempotency key receivers dedupe on.")
    alert_id: str
    camera_id: str
    subscription_id: str | None
    recipient: str
    channel: str
    kind: str
    state: str
    attempts: int
    due_at: datetime
    last_error: str | None
    provider_id: str | None
    digest_of: list[str]
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, d: DeliveryRecord) -> DeliveryPublic:
        return cls(
            id=d.id,
            key=d.key,
            alert_id=d.alert_id,
            camera_id=d.camera_id,
            subscription_id=d.subscription_id,
            recipient=d.recipient,
            channel=d.channel,
            kind=d.kind,
            state=d.state,
            attempts=d.attempts,
            due_at=d.due_at,
            last_error=d.last_error,
            provider_id=d.provider_id,
            digest_of=list(d.digest_of),
            created_at=d.created_at,
            updated_at=d.updated_at,
            sent_at=d.sent_at,
            delivered_at=d.delivered_at,
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None


State = Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")]


@router.get("/deliveries", response_model=DeliveryPage, summary="Notification deliveries")
async def list_deliveries(
    services: ServicesDep,
    principal: Reader,
    alert_id: Annotated[str | None, Query(max_length=64)] = None,
    state: State = None,
    channel: Channel | None = None,
    recipient: Annotated[str | None, Query(max_length=255)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryPage:
    """Newest first; a camera-limited caller sees its cameras' deliveries only."""
    allowed = await allowed_cameras(principal, services)
    try:
        items, nxt = await run_in_threadpool(
            _repo(services).list_deliveries,
            camera_ids=allowed,
            alert_id=alert_id,
            state=state,
            channel=None if channel is None else str(channel),
            recipient=recipient,
            cursor=cursor,
            limit=limit,
        )
    except InvalidCursor as exc:
        raise HTTPException(400, f"invalid cursor: {exc}") from exc
    return DeliveryPage(items=[DeliveryPublic.of(d) for d in items], next_cursor=nxt)


# -- test notifications ----------------------------------------------------------------------


class TestNotification(StrictModel):
    channel: Channel
    target: str = Field(min_length=1, max_length=2000)
    recipient: str = Field("test", min_length=1, max_length=255)
    template_id: str | None = Field(None, max_length=64)


class TestResult(BaseModel):
    delivery_id: str
    state: str
    detail: str | None = None
    error: str | None = None


@router.post(
    "/notifications/test",
    response_model=TestResult,
    summary="Send a test notification now (recorded as a delivery)",
)
async def test_notification(
    body: TestNotification, services: ServicesDep, principal: Admin
) -> TestResult:
    """Sends a sample alert to ``target`` on ``channel`` through the same channel code, SSRF
    guard and signing as real deliveries; the answer says what happened."""
    notify = _notify(services)
    try:
        sub = Subscription(
            name="test", recipient=body.recipient, channel=body.channel, target=body.target
        )
    except ValidationError as exc:
        raise _unprocessable("target", [e["msg"] for e in exc.errors()]) from exc
    _check_target(sub, services)
    tpl: tuple[str, str] = DEFAULT_TEMPLATES["sms" if sub.channel is Channel.SMS else "default"]
    if body.template_id is not None:
        stored = await _require_template(body.template_id, services)
        tpl = (stored.subject, stored.body)
    repo = _repo(services)
    key = "test-" + uuid.uuid4().hex
    record = await run_in_threadpool(
        repo.insert_delivery,
        {
            "key": key,
            "alert_id": "test",
            "camera_id": "",
            "subscription_id": None,
            "recipient": body.recipient,
            "channel": str(body.channel),
            "target": body.target,
            "kind": "test",
        },
    )
    view = _sample(SampleAlert(), datetime.now(UTC))
    ctx = _context(view, 1, notify.settings.public_url.rstrip("/"))
    ctx["kind"] = "test"
    try:
        rendered = render(tpl[0], tpl[1], ctx)
    except TemplateError as exc:
        raise _unprocessable("template_id", exc.problems) from exc
    msg = OutMessage(
        key=key,
        recipient=body.recipient,
        target=body.target,
        kind="test",
        subject=rendered.subject,
        body=rendered.body,
        payload={"alert_id": view.id, "camera_id": view.camera_id, "test": True}
        if sub.channel is not Channel.MQTT
        else {"event": {"type": "new", "before": None, "after": ctx["alert"], "id": key}},
    )

    def send() -> TestResult:
        senders = notify.senders()
        lease = repo.lease_one(record.id)
        try:
            sender = senders.get(str(body.channel))
            if sender is None:
                repo.finish(record.id, lease, "failed", error="channel not configured")
                return TestResult(delivery_id=record.id, state="failed", error="not configured")
            try:
                receipt = sender.send(msg)
            except DeliveryError as exc:
                state = "bounced" if exc.bounced else "failed"
                repo.finish(record.id, lease, state, error=str(exc)[:2000])
                return TestResult(delivery_id=record.id, state=state, error=str(exc))
            repo.finish(record.id, lease, receipt.state, provider_id=receipt.provider_id)
            return TestResult(delivery_id=record.id, state=receipt.state, detail=receipt.detail)
        finally:
            for s in senders.values():
                s.close()

    return await run_in_threadpool(send)


# -- signed callbacks ------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL and the sorted form."""
    data = url + "".join(k + form[k] for k in sorted(form))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


_SMS_STATES = {
    "delivered": "delivered",
    "undelivered": "bounced",
    "failed": "failed",
}


@router.post(
    "/notifications/sms/status",
    status_code=204,
    response_class=Response,
    summary="The SMS provider's status callback (signed)",
)
async def sms_status(request: Request, services: ServicesDep) -> Response:
    """Authenticated by ``X-Twilio-Signature`` under the SMS auth token (403 otherwise);
    "delivered", "undelivered" and "failed" settle a "sent" delivery."""
    notify = _notify(services)
    form = {k: str(v) for k, v in (await request.form()).items()}
    token = notify.settings.sms.auth_token
    url = notify.settings.public_url.rstrip("/") + "/api/v1/notifications/sms/status"
    given = request.headers.get("x-twilio-signature", "")
    expected = twilio_signature(token, url, form).encode()
    if not token or not hmac.compare_digest(expected, given.encode("utf-8", "replace")):
        raise HTTPException(403, "bad signature")
    state = _SMS_STATES.get(form.get("MessageStatus", ""))
    sid = form.get("MessageSid", "")
    if state and sid:
        error = form.get("ErrorCode") or None
        await run_in_threadpool(_repo(services).receipt, sid, state, error)
    return Response(status_code=204)


@router.get(
    "/notifications/media/{kind}/{alert_id}",
    summary="The snapshot or clip linked from a message (signed, expiring link)",
    responses={
        200: {"content": {"image/jpeg": {}, "video/mp4": {}}},
        403: {"description": "Bad or expired link"},
        404: {"description": "No such alert, snapshot or footage"},
    },
)
async def signed_media(
    kind: Annotated[str, Path(pattern="^(snapshot|clip)$")],
    alert_id: Annotated[str, Path(max_length=64)],
    request: Request,
    services: ServicesDep,
    exp: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(pattern="^[0-9a-f]{64}$")],
) -> Response:
    """The link's HMAC must match and ``exp`` (Unix s) must not have passed (403 otherwise).
    A snapshot is the alert's event's; a clip runs from 5 s before the event to 5 s after it
    (as ``GET /events/{id}/clip.mp4``; 404 when recording is off or there is no footage)."""
    notify = _notify(services)
    if not verify_link(notify.link_secret, kind, alert_id, exp, sig, time.time()):
        raise HTTPException(403, "invalid or expired link")
    alert = await run_in_threadpool(services.agent.alerts.get, alert_id)
    event = None if alert is None else await run_in_threadpool(services.events.get, alert.event_id)
    if event is None:
        raise HTTPException(404, "no such alert or event")
    if kind == "clip":
        require_recordings(services)
        last = event.ended_at or event.last_seen_at
        return await clip_around(services, event.camera_id, event.started_at, last, 5.0, 5.0)
    if event.snapshot_key is None:
        raise HTTPException(404, "no snapshot for this alert")
    try:
        data = await run_in_threadpool(services.objects.get, event.snapshot_key)
    except ObjectNotFound as exc:
        raise HTTPException(404, "the snapshot is missing") from exc
    return ranged_response(data, "image/jpeg", request, {"Cache-Control": "private, max-age=60"})
