"""Search routes: events and incidents by words, and items like a given event or incident.

The caller's camera scope goes into the vector query's filter (``SearchFilter.cameras``), so a
user limited to some cameras gets the top-k among those cameras, never a top-k of everything
cut down afterwards. Results carry their score (cosine similarity), the indexed text as a
snippet, and a snapshot URL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Security
from fastapi.exceptions import RequestValidationError
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import SearchServices, Services, ServicesDep
from sentinel.api.incidents import require_incident
from sentinel.api.security import allowed_cameras, authorize, require_event
from sentinel.gateway.roles import EVENTS_READ, Principal
from sentinel.search.index import IndexUnavailableError, SearchFilter, SearchHit
from sentinel.search.service import MAX_QUERY_BYTES

router = APIRouter(tags=["search"])

MAX_RESULTS = 100
SNIPPET_CHARS = 300


class SearchHitPublic(BaseModel):
    id: str = Field(description="The event's or incident's id.")
    kind: Literal["event", "incident"]
    score: float = Field(description="Cosine similarity to the query, higher is closer.")
    snippet: str = Field(description="The indexed description (what matched).")
    camera_id: str
    label: str
    started_at: datetime
    snapshot_url: str | None


class SearchResults(BaseModel):
    items: list[SearchHitPublic]
    index_backlog: int = Field(description="Items waiting to be indexed (search lags by them).")


def _search(services: Services) -> SearchServices:
    found: SearchServices | None = services.search
    if found is None:
        raise HTTPException(404, "search is not enabled (settings: search.enabled)")
    return found


def _public(hit: SearchHit) -> SearchHitPublic:
    meta = hit.metadata
    kind = "incident" if meta.get("kind") == "incident" else "event"
    snapshot_of = hit.id if meta.get("snapshot") else str(meta.get("snapshot_event") or "")
    text = hit.text if len(hit.text) <= SNIPPET_CHARS else hit.text[: SNIPPET_CHARS - 1] + "…"
    return SearchHitPublic(
        id=hit.id,
        kind=kind,
        score=round(hit.score, 4),
        snippet=text,
        camera_id=str(meta.get("camera_id", "")),
        label=str(meta.get("label", "")),
        started_at=datetime.fromtimestamp(int(meta.get("start", 0)), UTC),
        snapshot_url=f"/api/v1/events/{snapshot_of}/snapshot.jpg" if snapshot_of else None,
    )


async def _embed(search: SearchServices, texts: list[str]) -> NDArray[np.float32]:
    if search.embed_async is not None:
        return await search.embed_async(texts)
    return await run_in_threadpool(search.service.embed, texts)


async def _query(
    search: SearchServices,
    vector: NDArray[np.float32],
    flt: SearchFilter,
    k: int,
    exclude: str | None = None,
) -> list[SearchHit]:
    try:
        return await run_in_threadpool(search.reader.query, vector, flt, k, exclude=exclude)
    except IndexUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc


def _query_error(msg: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", "q"), "msg": msg, "type": kind}])


async def _scope(principal: Principal, services: Services) -> frozenset[str] | None:
    allowed = await allowed_cameras(principal, services)
    return None if allowed is None else frozenset(allowed)


@router.get("/search", response_model=SearchResults, summary="Search events and incidents")
async def search(
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    q: Annotated[str, Query(description="What to look for, in words (1 byte to 4 KiB).")],
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    kind: Literal["event", "incident"] | None = None,
    since: Annotated[datetime | None, Query(description="Started at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Started at or before.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 10,
) -> SearchResults:
    """The closest events and incidents to `q` among the cameras the caller may see, best
    first. The camera scope and the filters are part of the vector query."""
    if not q.strip():
        raise _query_error("the query is empty", "string_too_short")
    if len(q.encode()) > MAX_QUERY_BYTES:
        raise _query_error(f"the query is over {MAX_QUERY_BYTES} bytes", "string_too_long")
    if since is not None and until is not None and since > until:
        raise HTTPException(400, "`since` must not be after `until`")
    search_services = _search(services)
    flt = SearchFilter(
        cameras=await _scope(principal, services),
        camera_id=camera_id,
        label=label,
        kind=kind,
        since=since,
        until=until,
    )
    service = search_services.service
    hits: list[SearchHit] = []
    if not flt.matches_nothing():
        vector = (await _embed(search_services, [q]))[0]
        hits = await _query(search_services, vector, flt, limit)
    backlog = await run_in_threadpool(service.queue.backlog)
    return SearchResults(items=[_public(h) for h in hits], index_backlog=backlog)


async def _like_description(
    search_services: SearchServices, kind: str, item_id: str, flt: SearchFilter, limit: int
) -> list[SearchHit]:
    """The items closest to an item's indexed description vector (itself left out); one not
    indexed yet (open, or queued) is described and embedded now. 404 if it is gone."""
    try:
        vector = await run_in_threadpool(search_services.reader.vector, item_id)
    except IndexUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc
    if vector is None:
        doc = await run_in_threadpool(search_services.service.document, kind, item_id)
        if doc is None:  # deleted since the check
            raise HTTPException(404, f"{kind} not found")
        vector = (await _embed(search_services, [doc.text]))[0]
    return await _query(search_services, vector, flt, limit, exclude=item_id)


@router.get(
    "/events/{event_id}/similar",
    response_model=SearchResults,
    summary="Events and incidents like this event",
)
async def similar_events(
    event_id: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    kind: Literal["event", "incident"] | None = None,
    by: Annotated[
        Literal["description", "appearance"],
        Query(description="description: what, where, when; appearance: how the object looks."),
    ] = "description",
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 10,
) -> SearchResults:
    """The items closest to the event (itself left out), within the caller's cameras: by its
    description (an event not indexed yet is described and embedded now), or by appearance
    (the colours of its object's upper and lower body in its snapshot; events only). 404 for
    an event the caller cannot see; 409 by appearance for an event without a usable
    snapshot."""
    search_services = _search(services)
    await require_event(event_id, services, principal)
    flt = SearchFilter(
        cameras=await _scope(principal, services),
        camera_id=camera_id,
        label=label,
        kind=kind,
    )
    service = search_services.service
    hits: list[SearchHit] = []
    if by == "appearance":
        found = None
        # Appearance vectors are the events' own (an incident has no single object).
        if kind != "incident" and not flt.matches_nothing():
            try:
                found = await run_in_threadpool(service.similar_looking, event_id, flt, limit)
            except IndexUnavailableError as exc:
                raise HTTPException(503, str(exc)) from exc
            if found is None:
                raise HTTPException(409, f"event {event_id} has no usable snapshot")
        hits = found or []
    elif not flt.matches_nothing():
        hits = await _like_description(search_services, "event", event_id, flt, limit)
    backlog = await run_in_threadpool(service.queue.backlog)
    return SearchResults(items=[_public(h) for h in hits], index_backlog=backlog)


@router.get(
    "/incidents/{incident_id}/similar",
    response_model=SearchResults,
    summary="Events and incidents like this incident",
)
async def similar_incidents(
    incident_id: Annotated[str, Path(max_length=64)],
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    kind: Literal["event", "incident"] | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 10,
) -> SearchResults:
    """The items closest to the incident's description (itself left out), within the
    caller's cameras (the scope is inside the vector query); an incident not indexed yet is
    described and embedded now. 404 for an incident the caller cannot see."""
    search_services = _search(services)
    await require_incident(incident_id, services, principal)
    flt = SearchFilter(
        cameras=await _scope(principal, services),
        camera_id=camera_id,
        label=label,
        kind=kind,
    )
    hits: list[SearchHit] = []
    if not flt.matches_nothing():
        hits = await _like_description(search_services, "incident", incident_id, flt, limit)
    backlog = await run_in_threadpool(search_services.service.queue.backlog)
    return SearchResults(items=[_public(h) for h in hits], index_backlog=backlog)
