"""Notification routes: deliveries, test sends, and the two routes authenticated by signatures
instead of a principal (the SMS provider's status callback, and the media links of messages).

Reading deliveries needs ``alerts:read`` (a camera-limited principal sees its cameras'
deliveries only); sending a test notification needs ``admin``. The media links carry an HMAC
over kind, alert and expiry (see ``sentinel.notify.signing``); the SMS callback carries
Twilio's ``X-Twilio-Signature``, an HMAC-SHA1 under the auth token over the URL and the sorted
form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, Security
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.api.media import object_response
from sentinel.api.notify import (
    SampleAlert,
    check_target,
    notify_services,
    render_context,
    require_template,
    sample_view,
    store,
    unprocessable,
)
from sentinel.api.recordings import clip_around, require_recordings
from sentinel.api.security import allowed_cameras, authorize
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ADMIN, ALERTS_READ, Principal
from sentinel.notify.channels import DeliveryError, OutMessage
from sentinel.notify.policy import STATES
from sentinel.notify.signing import verify_link
from sentinel.notify.subscriptions import Channel, Subscription
from sentinel.notify.templates import DEFAULT_TEMPLATES, TemplateError, render
from sentinel.store.notify_repo import DeliveryRecord
from sentinel.store.objects import ObjectNotFound
from sentinel.store.sql import InvalidCursor

router = APIRouter(tags=["notifications"])

Reader = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])]
Admin = Annotated[Principal, Security(authorize, scopes=[ADMIN])]


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
            store(services).list_deliveries,
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
    notify = notify_services(services)
    try:
        sub = Subscription(
            name="test", recipient=body.recipient, channel=body.channel, target=body.target
        )
    except ValidationError as exc:
        raise unprocessable("target", [e["msg"] for e in exc.errors()]) from exc
    check_target(sub, services)
    tpl: tuple[str, str] = DEFAULT_TEMPLATES["sms" if sub.channel is Channel.SMS else "default"]
    if body.template_id is not None:
        stored = await require_template(body.template_id, services)
        tpl = (stored.subject, stored.body)
    repo = store(services)
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
    view = sample_view(SampleAlert(), datetime.now(UTC))
    ctx = render_context(view, 1, notify.settings.public_url.rstrip("/"))
    ctx["kind"] = "test"
    try:
        rendered = render(tpl[0], tpl[1], ctx)
    except TemplateError as exc:
        raise unprocessable("template_id", exc.problems) from exc
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
    notify = notify_services(services)
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
        await run_in_threadpool(store(services).receipt, sid, state, error)
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
    notify = notify_services(services)
    if not verify_link(notify.link_secret, kind, alert_id, exp, sig, time.time()):
        raise HTTPException(403, "invalid or expired link")
    alert = await run_in_threadpool(services.agent.alerts.get, alert_id)
    event = None if alert is None else await run_in_threadpool(services.events.get, alert.event_id)
    if event is None:
        raise HTTPException(404, "no such alert or event")
    if kind == "clip":
        require_recordings(services)
        last = event.ended_at or event.last_seen_at
        return await clip_around(
            services, event.camera_id, event.started_at, last, 5.0, 5.0, f"link:{alert_id}"
        )
    if event.snapshot_key is None:
        raise HTTPException(404, "no snapshot for this alert")
    try:
        return await run_in_threadpool(
            object_response,
            services.objects,
            event.snapshot_key,
            "image/jpeg",
            request,
            {"Cache-Control": "private, max-age=60"},
        )
    except ObjectNotFound as exc:
        raise HTTPException(404, "the snapshot is missing") from exc
