"""Playback routes: a camera's recording timeline, MP4 clips of a time range or an event, and
HLS (a VOD playlist of a time range, each stored segment remuxed to MPEG-TS on request).

Clips are assembled on request (``sentinel.video.clips.assemble_clip``: stream copy, no
re-encoding) into a temp file, served with HTTP Range support (starlette's ``FileResponse``:
206 with ``Content-Range``, 416 for unsatisfiable ranges) and deleted after the response.
Recordings are camera data: ``events:read`` plus the principal's camera scope; a hidden camera
or event answers 404, as does every route while recording is not configured.

Archived footage (tiering, ``sentinel.retention.archive``) is restored on demand: a clip,
playlist or segment request over it starts the restores and waits ``archive.restore_wait_s``;
if they are not done by then it answers 202 with their progress and ``Retry-After``, and the
restores go on, so a later request plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Security
from fastapi import Path as PathParam
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.security import authorize, require_camera, require_event
from sentinel.config import CAMERA_ID_PATTERN
from sentinel.gateway.roles import EVENTS_READ, Principal
from sentinel.retention.archive import RestoreError
from sentinel.store.objects import ObjectNotFound
from sentinel.store.segment_repo import SegmentRecord, SegmentRepository
from sentinel.video.clips import ClipInfo, NoFootage, SegmentSource, assemble_clip
from sentinel.video.hls import build_playlist, remux_to_ts

log = logging.getLogger(__name__)

router = APIRouter(tags=["recordings"])

CameraId = Annotated[str, PathParam(pattern=CAMERA_ID_PATTERN)]
EventId = Annotated[str, PathParam(max_length=64)]
SegmentId = Annotated[str, PathParam(max_length=64)]
Reader = Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])]

MAX_TIMELINE = timedelta(days=7)
DEFAULT_TIMELINE = timedelta(hours=24)
MAX_CLIP = timedelta(hours=1)
MAX_PAD_S = 60.0
MAX_PLAYLIST = timedelta(hours=24)
_MP4 = "video/mp4"
_M3U8 = "application/vnd.apple.mpegurl"
_TS = "video/mp2t"
CLIP_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {_MP4: {}}, "description": "The clip (206 for a Range request)"},
    206: {"description": "Part of the clip (`Range: bytes=...`)"},
    400: {"description": "Bad range"},
    404: {"description": "No footage, not visible, or recording is not enabled"},
    416: {"description": "The asked byte range is outside the clip"},
}
RESTORING: dict[int | str, dict[str, object]] = {
    202: {
        "description": "Archived footage is being restored: `restore` holds the progress; "
        "ask again after `Retry-After` seconds"
    },
    503: {"description": "Archived footage could not be restored"},
}
CLIP_RESPONSES |= RESTORING


class SegmentPublic(BaseModel):
    id: str
    start_at: datetime
    end_at: datetime
    duration_s: float
    size: int
    codec: str
    kind: str
    archived: bool = False  # in the archive store: playing it may first answer 202 (restore)

    @classmethod
    def of(cls, seg: SegmentRecord) -> SegmentPublic:
        return cls(
            id=seg.id,
            start_at=seg.start_at,
            end_at=seg.end_at,
            duration_s=seg.duration_s,
            size=seg.size,
            codec=seg.codec,
            kind=seg.kind,
            archived=seg.archived,
        )


class Gap(BaseModel):
    start: datetime
    end: datetime


class RecordingTimeline(BaseModel):
    """The segments overlapping ``[since, until]`` and the uncovered time between them."""

    since: datetime
    until: datetime
    segments: list[SegmentPublic]
    gaps: list[Gap]
    covered_s: float


def query_utc(value: datetime) -> datetime:
    """Naive query times are taken as UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def require_recordings(services: Services) -> SegmentRepository:
    if services.segments is None:
        raise HTTPException(404, "recording is not enabled")
    return services.segments


@router.get(
    "/cameras/{camera_id}/recordings",
    response_model=RecordingTimeline,
    summary="A camera's recorded segments and gaps in a time range (default: the last 24 h)",
    responses={400: {"description": "Bad range"}, 404: {"description": "Not visible"}},
)
async def recordings_timeline(
    camera_id: CameraId,
    services: ServicesDep,
    principal: Reader,
    since: datetime | None = None,
    until: datetime | None = None,
) -> RecordingTimeline:
    repo = require_recordings(services)
    await require_camera(principal, services, camera_id)
    end = query_utc(until) if until is not None else datetime.now(UTC)
    start = query_utc(since) if since is not None else end - DEFAULT_TIMELINE
    if start >= end:
        raise HTTPException(400, "`since` must be before `until`")
    if end - start > MAX_TIMELINE:
        raise HTTPException(400, f"the range may span at most {MAX_TIMELINE.days} days")
    timeline = await run_in_threadpool(repo.timeline, camera_id, start, end)
    return RecordingTimeline(
        since=timeline.start,
        until=timeline.end,
        segments=[SegmentPublic.of(s) for s in timeline.segments],
        gaps=[Gap(start=a, end=b) for a, b in timeline.gaps],
        covered_s=timeline.covered_s,
    )


class _TempFileResponse(FileResponse):
    """A ``FileResponse`` whose file is deleted once the response is over.

    The deletion is its ``BackgroundTask``; starlette skips the background when it answers
    a Range request itself (416, malformed range) or the transfer fails, so ``__call__``
    deletes the file in those cases too.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await run_in_threadpool(_unlink, Path(self.path))


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


async def restore_archived(
    services: Services, records: list[SegmentRecord], requested_by: str
) -> Response | None:
    """Restore the archived segments among ``records`` (see the module docstring).

    Returns:
        None once every segment has a local copy; else the 202 answer to give.

    Raises:
        HTTPException: 503 if a store failed during a restore, or tiering is off (archived
            footage, no archive store to read it from).
    """
    if not any(r.archived for r in records):
        return None
    restorer = services.archive
    if restorer is None:
        raise HTTPException(503, "the footage is archived, and the archive is not configured")
    started = time.monotonic()
    job = await run_in_threadpool(restorer.ensure, records, requested_by)
    if job.futures:
        waiting = [asyncio.wrap_future(f) for f in job.futures]
        for w in waiting:  # a restore failing after we answered must not log "never retrieved"
            w.add_done_callback(_retrieve)
        await asyncio.wait(waiting, timeout=restorer.wait_s)
    progress = job.progress()
    if progress.failed:
        log.warning("restores failed: %s", "; ".join(job.errors()))
        if not job.lost_only():  # a store failed: try again later
            raise HTTPException(503, "archived footage could not be restored")
    if progress.done:  # footage whose archive copy is lost is skipped, as a missing object
        return None
    retry = progress.retry_after_s(time.monotonic() - started)
    return JSONResponse(
        {"detail": "restoring archived footage", "restore": progress.to_dict()},
        status_code=202,
        headers={"Retry-After": str(retry), "Cache-Control": "no-store"},
    )


def _retrieve(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()


def _load_source(services: Services, record: SegmentRecord) -> SegmentSource:
    """The segment's bytes: its local object, else (archived since it was read, or its
    restored copy expired) a restore now.

    Raises:
        ObjectNotFound: If there is no local object and no archive copy to restore.
    """
    try:
        return SegmentSource.load(services.objects, record)
    except ObjectNotFound:
        fresh = require_recordings(services).get(record.id)
        if fresh is None or not fresh.archived or services.archive is None:
            raise
    try:
        data = services.archive.fetch(fresh, "internal")
    except RestoreError as exc:
        raise ObjectNotFound(record.object_key) from exc
    return SegmentSource(data, fresh.start_at, fresh.end_at)


def _build_clip(services: Services, camera_id: str, start: datetime, end: datetime) -> ClipInfo:
    """Loads the segments overlapping ``[start, end]`` and writes the clip to a temp file.

    Raises:
        NoFootage: If no stored segment holds a frame of the range (the file is removed).
    """
    repo = require_recordings(services)
    sources: list[SegmentSource] = []
    for record in repo.range(camera_id, start, end):
        try:
            sources.append(_load_source(services, record))
        except ObjectNotFound:  # reconcile removes the row at the next start
            log.warning("segment %s has no object %s: skipped", record.id, record.object_key)
    fd, name = tempfile.mkstemp(prefix="sentinel-clip-", suffix=".mp4")
    os.close(fd)
    dest = Path(name)
    try:
        return assemble_clip(sources, start, end, dest, max_clip_s=MAX_CLIP.total_seconds())
    except BaseException:
        _unlink(dest)
        raise


async def _serve_clip(
    services: Services, camera_id: str, start: datetime, end: datetime, requested_by: str
) -> Response:
    repo = require_recordings(services)
    records = await run_in_threadpool(repo.range, camera_id, start, end)
    pending = await restore_archived(services, records, requested_by)
    if pending is not None:
        return pending
    try:
        clip = await run_in_threadpool(_build_clip, services, camera_id, start, end)
    except NoFootage as exc:
        raise HTTPException(404, "no footage") from exc
    stamp = f"{clip.actual_start:%Y%m%dT%H%M%SZ}"
    return _TempFileResponse(
        clip.path,
        media_type=_MP4,
        filename=f"{camera_id}-{stamp}.mp4",
        content_disposition_type="inline",
        background=BackgroundTask(_unlink, clip.path),
        headers={
            "Cache-Control": "private, no-cache",
            "X-Clip-Start": clip.actual_start.isoformat(),
            "X-Clip-End": clip.actual_end.isoformat(),
            "X-Clip-Splices": str(clip.splices),
        },
    )


def _check_clip_range(start: datetime, end: datetime, *, instant_ok: bool = False) -> None:
    if end < start or (end == start and not instant_ok):
        raise HTTPException(400, "`end` must be after `start`")
    if end - start > MAX_CLIP:
        raise HTTPException(400, f"a clip may last at most {MAX_CLIP.total_seconds():g} s")


@router.get(
    "/cameras/{camera_id}/clip.mp4",
    response_class=FileResponse,
    responses=CLIP_RESPONSES,
    summary="An MP4 of a camera's recording from `start` to `end` (at most 1 h)",
)
async def camera_clip(
    camera_id: CameraId,
    services: ServicesDep,
    principal: Reader,
    start: datetime,
    end: datetime,
) -> Response:
    """Starts at the last keyframe at or before `start`; holes in the recording are closed up.

    `X-Clip-Start` / `X-Clip-End` give the wall-clock span actually served. Supports
    `Range` requests.
    """
    require_recordings(services)
    await require_camera(principal, services, camera_id)
    start, end = query_utc(start), query_utc(end)
    _check_clip_range(start, end)
    return await _serve_clip(services, camera_id, start, end, principal.subject)


@router.get(
    "/events/{event_id}/clip.mp4",
    response_class=FileResponse,
    responses=CLIP_RESPONSES,
    summary="An MP4 of an event, from `pre_s` before it started to `post_s` after it ended",
)
async def event_clip(
    event_id: EventId,
    services: ServicesDep,
    principal: Reader,
    pre_s: Annotated[float, Query(ge=0, le=MAX_PAD_S)] = 5.0,
    post_s: Annotated[float, Query(ge=0, le=MAX_PAD_S)] = 5.0,
) -> Response:
    """An ongoing event's clip ends `post_s` after it was last seen. Supports `Range`."""
    require_recordings(services)
    ev = await require_event(event_id, services, principal)
    return await clip_around(
        services,
        ev.camera_id,
        ev.started_at,
        ev.ended_at or ev.last_seen_at,
        pre_s,
        post_s,
        principal.subject,
    )


async def clip_around(
    services: Services,
    camera_id: str,
    started_at: datetime,
    last_at: datetime,
    pre_s: float,
    post_s: float,
    requested_by: str = "internal",
) -> Response:
    """The clip of something that happened on a camera (an event, an incident): from `pre_s`
    before it started to `post_s` after it was last seen (202 while archived footage of it
    is being restored)."""
    start = query_utc(started_at) - timedelta(seconds=pre_s)
    end = query_utc(last_at) + timedelta(seconds=post_s)
    _check_clip_range(start, end, instant_ok=True)  # an instant event with no padding
    return await _serve_clip(services, camera_id, start, end, requested_by)


@router.get(
    "/cameras/{camera_id}/hls.m3u8",
    response_class=Response,
    responses={
        200: {"content": {_M3U8: {}}, "description": "The HLS VOD playlist"},
        400: {"description": "Bad range"},
        404: {"description": "No footage, not visible, or recording is not enabled"},
        **RESTORING,
    },
    summary="An HLS VOD playlist of a camera's recording from `start` to `end` (at most 24 h)",
)
async def camera_hls_playlist(
    camera_id: CameraId,
    services: ServicesDep,
    principal: Reader,
    start: datetime,
    end: datetime,
) -> Response:
    """Lists every stored segment overlapping the range, whole, as `segments/<id>.ts`.

    `#EXT-X-DISCONTINUITY` marks a hole of more than 1 s in the recording.
    """
    repo = require_recordings(services)
    await require_camera(principal, services, camera_id)
    start, end = query_utc(start), query_utc(end)
    if start >= end:
        raise HTTPException(400, "`end` must be after `start`")
    if end - start > MAX_PLAYLIST:
        raise HTTPException(
            400, f"the range may span at most {MAX_PLAYLIST.total_seconds() / 3600:g} h"
        )
    records = await run_in_threadpool(repo.range, camera_id, start, end)
    if not records:
        raise HTTPException(404, "no footage")
    pending = await restore_archived(services, records, principal.subject)
    if pending is not None:
        return pending
    playlist = build_playlist(records, lambda seg: f"segments/{seg.id}.ts")
    return Response(playlist, media_type=_M3U8, headers={"Cache-Control": "private, no-cache"})


def _build_ts(services: Services, record: SegmentRecord) -> Path:
    """Remuxes a stored segment to a temp MPEG-TS file.

    Raises:
        ObjectNotFound: If the segment's object is missing.
        ValueError: If the segment holds no video (the file is removed).
    """
    data = _load_source(services, record).data
    fd, name = tempfile.mkstemp(prefix="sentinel-hls-", suffix=".ts")
    os.close(fd)
    dest = Path(name)
    try:
        remux_to_ts(data, record.start_at, dest)
    except BaseException:
        _unlink(dest)
        raise
    return dest


@router.get(
    "/cameras/{camera_id}/segments/{segment_id}.ts",
    response_class=FileResponse,
    responses={
        200: {"content": {_TS: {}}, "description": "The segment (206 for a Range request)"},
        206: {"description": "Part of the segment (`Range: bytes=...`)"},
        404: {"description": "No such segment, not visible, or recording is not enabled"},
        416: {"description": "The asked byte range is outside the segment"},
        **RESTORING,
    },
    summary="One recorded segment as MPEG-TS (for HLS playback)",
)
async def camera_hls_segment(
    camera_id: CameraId,
    segment_id: SegmentId,
    services: ServicesDep,
    principal: Reader,
) -> Response:
    """Stream copy of the stored segment, stamped with its wall-clock time. Supports `Range`."""
    repo = require_recordings(services)
    await require_camera(principal, services, camera_id)
    record = await run_in_threadpool(repo.get, segment_id)
    if record is None or record.camera_id != camera_id:
        raise HTTPException(404, "segment not found")
    pending = await restore_archived(services, [record], principal.subject)
    if pending is not None:
        return pending
    try:
        path = await run_in_threadpool(_build_ts, services, record)
    except ObjectNotFound as exc:
        log.warning("segment %s has no object %s", record.id, record.object_key)
        raise HTTPException(404, "segment not found") from exc
    except ValueError as exc:
        log.warning("segment %s cannot be remuxed: %s", record.id, exc)
        raise HTTPException(404, "segment not found") from exc
    return _TempFileResponse(
        path,
        media_type=_TS,
        background=BackgroundTask(_unlink, path),
        headers={"Cache-Control": "private, max-age=3600"},
    )
