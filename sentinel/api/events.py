"""Event routes: list with filters and cursor pagination, one event, its snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, Security
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.api.media import object_response
from sentinel.api.schemas import EventPage, EventPublic
from sentinel.api.security import allowed_cameras, authorize, require_event
from sentinel.gateway.roles import EVENTS_READ, Principal
from sentinel.store.objects import ObjectNotFound
from sentinel.store.sql import InvalidCursor

router = APIRouter(prefix="/events", tags=["events"])

MAX_LIMIT = 500


@router.get("", response_model=EventPage, summary="List events, newest first")
async def list_events(
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> EventPage:
    if since is not None and until is not None and since > until:
        raise HTTPException(400, "`since` must not be after `until`")
    allowed = await allowed_cameras(principal, services)
    try:
        page = await run_in_threadpool(
            services.events.list,
            camera_id=camera_id,
            camera_ids=allowed,
            label=label,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
    except InvalidCursor as exc:
        raise HTTPException(400, f"invalid cursor: {exc}") from exc
    return EventPage(items=[EventPublic.of(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/{event_id}", response_model=EventPublic, summary="One event")
async def get_event(
    event_id: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
) -> EventPublic:
    return EventPublic.of(await require_event(event_id, services, principal))


@router.get(
    "/{event_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No snapshot"}},
    summary="The event's best frame with its box drawn",
)
async def get_snapshot(
    request: Request,
    event_id: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
) -> Response:
    ev = await require_event(event_id, services, principal)
    if ev.snapshot_key is None:
        raise HTTPException(404, f"event {event_id} has no snapshot yet")
    try:
        return await run_in_threadpool(
            object_response,
            services.objects,
            ev.snapshot_key,
            "image/jpeg",
            request,
            {"Cache-Control": "no-cache"},
        )
    except ObjectNotFound as exc:
        raise HTTPException(404, f"snapshot of event {event_id} is missing") from exc
