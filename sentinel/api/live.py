"""``/api/v1/live``: alert, incident and camera-state changes over a WebSocket.

Credentials as for every route (``Authorization: Bearer``, ``X-API-Key``, or the session
cookie that a browser sends with the handshake), never in the URL. A cookie-authenticated
handshake must come from this server's own origin (a page elsewhere cannot ride the
operator's session). Unauthenticated: the socket is closed with code 4401; authenticated
without any of the kinds' read scopes (or from another origin): 4403. Credentials are checked
again every ``REAUTH_S`` seconds (a revoked user or an expired token is closed with 4401).

Protocol (JSON text frames). The server sends ``{"type": "hello", "cursor": c}`` first,
then ``{"type": "alert" | "incident" | "camera", "cursor": c, "camera_id": ..., ...}`` per
change the principal may see (its scope for the kind, and its cameras, per message), and
``{"type": "reset", "cursor": c}`` when a resume cursor is too old or unknown (reload state
over REST, then follow ``c``). To resume after a disconnect, connect with ``?cursor=<last
cursor>`` (a cursor is no secret) or send ``{"resume": "<last cursor>"}``: every buffered
message after it follows, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from sentinel.api.deps import Services, current_services
from sentinel.api.gateway import API_KEY_HEADER
from sentinel.api.security import allowed_cameras, identify
from sentinel.gateway.roles import Principal
from sentinel.live.bus import MemoryBus
from sentinel.live.hub import LiveHub
from sentinel.live.messages import KIND_SCOPES, visible
from sentinel.store.alert_repo import AlertRecord
from sentinel.store.live_repo import LiveChangesRepo, alert_fields

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

LIVE_PATH = "/live"
UNAUTHENTICATED = 4401
FORBIDDEN = 4403
REAUTH_S = 60.0
MAX_CURSOR = 64
_READ_S = 1.0  # a read waits this long, so resumes and re-checks are seen promptly


def hub_of(services: Services) -> LiveHub:
    """The services' hub; an in-process one over the services' stores if none was set."""
    if services.live is None:
        repo = LiveChangesRepo(services.engine)
        services.live = LiveHub(MemoryBus(), repo, services.control.statuses)
    hub: LiveHub = services.live
    return hub


async def publish_verdict(services: Services, record: AlertRecord) -> None:
    """Publishes an operator's verdict (written by the API only, outside the outbox)."""
    data = alert_fields(dataclasses.asdict(record), "verdict")
    key = f"verdict:{record.id}:{_iso(record.verdict_at)}:{record.verdict}"
    try:
        await hub_of(services).bus.publish("alert", record.camera_id, data, key)
    except Exception:  # the verdict is stored; only its live message is lost (say so)
        logger.exception("live: publishing the verdict of alert %s failed", record.id)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if not origin:
        return False
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


def _valid_cursor(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_CURSOR and value.isascii():
        return value
    return None


async def _principal(websocket: WebSocket, services: Services) -> Principal | int:
    """The caller, or the close code that refuses it."""
    try:
        principal = await identify(websocket, services.security)
    except HTTPException:
        return UNAUTHENTICATED
    if principal.kind == "anonymous":
        return UNAUTHENTICATED
    by_cookie = "authorization" not in websocket.headers and API_KEY_HEADER.lower() not in {
        k.lower() for k in websocket.headers
    }
    if by_cookie and not _same_origin(websocket):
        return FORBIDDEN
    if not any(principal.has(s) for s in KIND_SCOPES.values()):
        return FORBIDDEN
    return principal


@router.websocket(LIVE_PATH)
async def live(websocket: WebSocket) -> None:
    """Pushes alert, incident and camera-state changes (see the module's docstring)."""
    services = current_services(websocket.scope)
    if services is None:
        raise RuntimeError("the API was started without its services")
    await websocket.accept()
    who = await _principal(websocket, services)
    if isinstance(who, int):
        await websocket.close(code=who)
        return
    principal = who
    hub = hub_of(services)
    resume: asyncio.Queue[str] = asyncio.Queue(maxsize=1)

    async def receive() -> None:
        while True:
            message = await websocket.receive_json()
            cursor = _valid_cursor(message.get("resume")) if isinstance(message, dict) else None
            if cursor is not None:
                with contextlib.suppress(asyncio.QueueEmpty):
                    resume.get_nowait()
                resume.put_nowait(cursor)

    async def send() -> int:
        cursor = _valid_cursor(websocket.query_params.get("cursor"))
        first = await hub.read(None)
        await websocket.send_json({"type": "hello", "cursor": cursor or first.cursor})
        cursor = cursor or first.cursor
        scopes = {s for s in KIND_SCOPES.values() if principal.has(s)}
        checked = time.monotonic()
        while True:
            with contextlib.suppress(asyncio.QueueEmpty):
                cursor = resume.get_nowait()
            if time.monotonic() - checked > REAUTH_S:
                again = await _principal(websocket, services)
                if isinstance(again, int):
                    return again
                checked = time.monotonic()
            batch = await hub.read(cursor, _READ_S)
            if batch.reset:
                await websocket.send_json({"type": "reset", "cursor": batch.cursor})
            if batch.messages:
                # Camera limits resolve through groups: looked up per batch, so a camera
                # moved out of the principal's groups stops at once.
                cameras = await allowed_cameras(principal, services)
                for m in batch.messages:
                    if visible(m, scopes, cameras):
                        await websocket.send_json(m.to_json())
            cursor = batch.cursor

    receiver = asyncio.ensure_future(receive())
    sender = asyncio.ensure_future(send())
    try:
        done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (receiver, sender):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    if sender in done and not sender.cancelled() and sender.exception() is None:
        with contextlib.suppress(Exception):
            await websocket.close(code=sender.result())
