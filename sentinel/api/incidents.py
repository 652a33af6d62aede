"""Incident routes: list with filters and cursor pagination, one incident, its clip.

An incident is camera data: ``events:read`` plus the principal's camera scope; a hidden or
unknown incident answers 404. Its alert is shown to principals who may read alerts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Security
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from sentinel.api.alerts import AlertPublic
from sentinel.api.deps import Services, ServicesDep
from sentinel.api.recordings import (
    CLIP_RESPONSES,
    MAX_PAD_S,
    clip_around,
    query_utc,
    require_recordings,
)
from sentinel.api.schemas import EventPublic
from sentinel.api.security import allowed_cameras, authorize
from sentinel.domain.incidents import Incident
from sentinel.gateway.roles import ALERTS_READ, EVENTS_READ, Principal
from sentinel.store.incident_repo import IncidentRepository, InvalidCursor

router = APIRouter(prefix="/incidents", tags=["incidents"])

MAX_LIMIT = 500
IncidentId = Annotated[str, Path(max_length=64)]
Reader = Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])]


class KeyFramePublic(BaseModel):
    event_id: str
    label: str
    score: float
    at: datetime
    snapshot_url: str = Field(description="The member event's best frame")


class IncidentPublic(BaseModel):
    id: str
    camera_id: str
    status: str = Field(description="open while a member is active or the quiet gap runs")
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    labels: list[str]
    zones: list[str]
    member_ids: list[str]
    key_frames: list[KeyFramePublic]
    previous_id: str | None = Field(description="The incident this one continues, if any")
    clip_url: str

    @classmethod
    def of(cls, inc: Incident) -> IncidentPublic:
        return cls(
            id=inc.id,
            camera_id=inc.camera_id,
            status=inc.status.value,
            started_at=inc.started_at,
            last_seen_at=inc.last_seen_at,
            ended_at=inc.ended_at,
            labels=list(inc.labels),
            zones=list(inc.zones),
            member_ids=list(inc.members),
            key_frames=[
                KeyFramePublic(
                    event_id=f.event_id,
                    label=f.label,
                    score=round(f.score, 4),
                    at=f.at,
                    snapshot_url=f"/api/v1/events/{f.event_id}/snapshot.jpg",
                )
                for f in inc.key_frames
            ],
            previous_id=inc.previous_id,
            clip_url=f"/api/v1/incidents/{inc.id}/clip.mp4",
        )


class IncidentDetail(IncidentPublic):
    members: list[EventPublic]
    alert: AlertPublic | None = Field(description="Its alert (needs alerts:read), if any")


class IncidentPage(BaseModel):
    items: list[IncidentPublic]
    next_cursor: str | None


def _repo(services: Services) -> IncidentRepository:
    return IncidentRepository(services.engine)


async def require_incident(incident_id: str, services: Services, principal: Principal) -> Incident:
    """The incident, if ``principal`` may see its camera; 404 otherwise (hidden or missing)."""
    inc = await run_in_threadpool(_repo(services).get, incident_id)
    allowed = await allowed_cameras(principal, services)
    if inc is None or (allowed is not None and inc.camera_id not in allowed):
        raise HTTPException(404, "incident not found")
    return inc


@router.get("", response_model=IncidentPage, summary="List incidents, newest first")
async def list_incidents(
    services: ServicesDep,
    principal: Reader,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> IncidentPage:
    if since is not None and until is not None and since > until:
        raise HTTPException(400, "`since` must not be after `until`")
    allowed = await allowed_cameras(principal, services)
    try:
        page = await run_in_threadpool(
            _repo(services).list,
            camera_id=camera_id,
            camera_ids=allowed,
            label=label,
            status=status,
            since=None if since is None else query_utc(since),
            until=None if until is None else query_utc(until),
            cursor=cursor,
            limit=limit,
        )
    except InvalidCursor as exc:
        raise HTTPException(400, f"invalid cursor: {exc}") from exc
    return IncidentPage(
        items=[IncidentPublic.of(i) for i in page.items], next_cursor=page.next_cursor
    )


@router.get("/{incident_id}", response_model=IncidentDetail, summary="One incident")
async def get_incident(
    incident_id: IncidentId, services: ServicesDep, principal: Reader
) -> IncidentDetail:
    inc = await require_incident(incident_id, services, principal)

    def load() -> IncidentDetail:
        members = [e for e in (services.events.get(m) for m in inc.members) if e is not None]
        alert = services.agent.alerts.by_incident(inc.id) if principal.has(ALERTS_READ) else None
        return IncidentDetail(
            **IncidentPublic.of(inc).model_dump(),
            members=[EventPublic.of(e) for e in members],
            alert=AlertPublic.of_record(alert) if alert is not None else None,
        )

    return await run_in_threadpool(load)


@router.get(
    "/{incident_id}/clip.mp4",
    response_class=FileResponse,
    responses=CLIP_RESPONSES,
    summary="An MP4 of an incident, from `pre_s` before it started to `post_s` after it ended",
)
async def incident_clip(
    incident_id: IncidentId,
    services: ServicesDep,
    principal: Reader,
    pre_s: Annotated[float, Query(ge=0, le=MAX_PAD_S)] = 5.0,
    post_s: Annotated[float, Query(ge=0, le=MAX_PAD_S)] = 5.0,
) -> Response:
    """An open incident's clip ends `post_s` after it was last seen. Supports `Range`."""
    require_recordings(services)
    inc = await require_incident(incident_id, services, principal)
    last = inc.ended_at or inc.last_seen_at
    return await clip_around(
        services, inc.camera_id, inc.started_at, last, pre_s, post_s, principal.subject
    )
