"""Exports: clips of a camera's recording kept until someone deletes them.

``POST /exports`` assembles the clip at once (in a worker thread, like the playback routes: at
most 1 h, stream copy) and stores it under ``exports/<camera_id>/<id>.mp4``, outside the
``recordings/`` prefix of the retention sweep, so deleting or sweeping the source segments
afterwards leaves the export whole. An export of a camera with ``privacy.blur_faces`` is
re-encoded with faces pixelated in every frame (``sentinel.retention.blurring``), never kept
unblurred: if blurring fails, the export fails. Reading needs ``events:read``, creating and deleting
``alerts:write`` (operators); the principal's camera scope applies to all of them, and a
hidden camera or export answers 404, as does every route while exports are not configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.media import object_response
from sentinel.api.recordings import (
    CLIP_RESPONSES,
    _build_clip,
    _check_clip_range,
    _unlink,
    query_utc,
    require_recordings,
)
from sentinel.api.records import RecordView
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.config import CAMERA_ID_PATTERN, PrivacySettings
from sentinel.gateway.roles import ALERTS_WRITE, EVENTS_READ, Principal
from sentinel.retention.blurring import camera_privacy, redact_export
from sentinel.retention.holds import load_holds
from sentinel.store.export_repo import ExportRecord, ExportRepository, export_key, new_export_id
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import ObjectNotFound
from sentinel.video.clips import NoFootage

log = logging.getLogger(__name__)

router = APIRouter(prefix="/exports", tags=["exports"])

ExportId = Annotated[str, PathParam(max_length=64)]
Reader = Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])]
Writer = Annotated[Principal, Security(authorize, scopes=[ALERTS_WRITE])]

_MP4 = "video/mp4"
_NOT_FOUND = "export not found"


class ExportCreate(BaseModel):
    """The clip to keep: a camera's recording from ``start`` to ``end`` (at most 1 h)."""

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    start: datetime
    end: datetime
    name: str | None = Field(default=None, max_length=200, description="Default: camera + time")


class ExportPublic(RecordView):
    """An export; ``start_at``/``end_at`` are the span the clip actually holds."""

    record = ExportRecord
    hidden = frozenset({"object_key"})

    id: str
    camera_id: str
    name: str
    start_at: datetime
    end_at: datetime
    size: int
    created_by: str
    created_at: datetime
    status: str
    error: str | None


def _exports(services: Services) -> ExportRepository:
    if services.exports is None:
        raise HTTPException(404, "exports are not enabled")
    return services.exports


async def _visible_export(export_id: str, services: Services, principal: Principal) -> ExportRecord:
    repo = _exports(services)
    rec = await run_in_threadpool(repo.get, export_id)
    allowed = await allowed_cameras(principal, services)
    if rec is None or (allowed is not None and rec.camera_id not in allowed):
        raise HTTPException(404, _NOT_FOUND)
    return rec


def _blurred(clip: Path, privacy: PrivacySettings) -> bytes:
    """The clip re-encoded with faces pixelated in every frame."""
    fd, name = tempfile.mkstemp(prefix="sentinel-blurred-", suffix=".mp4")
    os.close(fd)
    dest = Path(name)
    try:
        report = redact_export(clip, dest, privacy)
        log.info(
            "export blurred: %d frames, %d face detections, %d faces, %.2f s",
            report.frames,
            report.detections,
            report.faces,
            report.seconds,
        )
        return dest.read_bytes()
    finally:
        _unlink(dest)


def _make_export(
    services: Services,
    repo: ExportRepository,
    body: ExportCreate,
    start: datetime,
    end: datetime,
    created_by: str,
) -> ExportRecord:
    """Assembles the clip, stores it, then indexes it (a failure is indexed as ``failed``).

    Raises:
        NoFootage: If no stored segment holds a frame of the range (nothing is stored).
    """
    export_id = new_export_id()
    key = export_key(body.camera_id, export_id)
    name = body.name or f"{body.camera_id} {start:%Y-%m-%d %H:%M:%S}Z"
    try:
        privacy = camera_privacy(services.cameras, body.camera_id)
        clip = _build_clip(services, body.camera_id, start, end)
        try:
            data = _blurred(clip.path, privacy) if privacy.blur_faces else clip.path.read_bytes()
        finally:
            _unlink(clip.path)
        services.objects.put(key, data, _MP4)
    except NoFootage:
        raise
    except Exception as exc:
        log.exception("export %s of %s failed", export_id, body.camera_id)
        with contextlib.suppress(Exception):
            services.objects.delete(key)
        return repo.add(
            export_id,
            body.camera_id,
            name,
            start,
            end,
            size=0,
            created_by=created_by,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
        )
    try:
        return repo.add(
            export_id,
            body.camera_id,
            name,
            clip.actual_start,
            clip.actual_end,
            size=len(data),
            created_by=created_by,
        )
    except BaseException:
        services.objects.delete(key)  # no row: the object would never be found again
        raise


@router.post(
    "",
    response_model=ExportPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Keep a camera's recording from `start` to `end` (at most 1 h) as an MP4",
    responses={
        400: {"description": "Bad range"},
        404: {"description": "No footage, not visible, or recording/exports are not enabled"},
        500: {"description": "The clip could not be written (the export is kept as `failed`)"},
    },
)
async def create_export(
    body: ExportCreate, services: ServicesDep, principal: Writer
) -> ExportPublic:
    """Assembled now (stream copy): the answer comes once the clip is stored.

    The clip starts at the last keyframe at or before `start`; holes are closed up. It is kept
    until deleted, whatever happens to the recording it was made from.
    """
    repo = _exports(services)
    require_recordings(services)
    await require_camera(principal, services, body.camera_id)
    start, end = query_utc(body.start), query_utc(body.end)
    _check_clip_range(start, end)
    try:
        rec = await run_in_threadpool(
            _make_export, services, repo, body, start, end, principal.subject
        )
    except NoFootage as exc:
        raise HTTPException(404, "no footage") from exc
    if rec.status != "ready":
        raise HTTPException(500, f"export {rec.id} failed")
    return ExportPublic.of_record(rec)


@router.get("", response_model=list[ExportPublic], summary="Exports, newest first")
async def list_exports(
    services: ServicesDep,
    principal: Reader,
    camera_id: Annotated[str | None, Query(pattern=CAMERA_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ExportPublic]:
    """Only the exports of the cameras the caller may see (`camera_id`: of that camera)."""
    repo = _exports(services)
    if camera_id is not None:
        await require_camera(principal, services, camera_id)
    allowed = await allowed_cameras(principal, services)
    rows = await run_in_threadpool(
        lambda: repo.list(cameras=allowed, camera_id=camera_id, limit=limit, offset=offset)
    )
    return [ExportPublic.of_record(r) for r in rows]


# Before "/{export_id}", which would match "<id>.mp4" too.
@router.get(
    "/{export_id}.mp4",
    response_class=Response,
    responses={**CLIP_RESPONSES, 409: {"description": "The export failed: no clip"}},
    summary="An export's MP4 (supports `Range`)",
)
async def export_video(
    export_id: ExportId, request: Request, services: ServicesDep, principal: Reader
) -> Response:
    """A Range request reads only the asked bytes from the object store (an encrypted export
    decrypts only the chunks that hold them), so a player seeks without fetching the clip."""
    rec = await _visible_export(export_id, services, principal)
    if rec.status != "ready":
        raise HTTPException(409, "the export failed: it has no clip")
    filename = f"{rec.camera_id}-{rec.start_at:%Y%m%dT%H%M%SZ}.mp4"
    headers = {
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'inline; filename="{filename}"',
        "X-Clip-Start": rec.start_at.isoformat(),
        "X-Clip-End": rec.end_at.isoformat(),
    }
    try:
        return await run_in_threadpool(
            object_response, services.objects, rec.object_key, _MP4, request, headers
        )
    except ObjectNotFound as exc:
        log.warning("export %s has no object %s", rec.id, rec.object_key)
        raise HTTPException(404, "the export's clip is missing") from exc


@router.get(
    "/{export_id}",
    response_model=ExportPublic,
    summary="One export",
    responses={404: {"description": "Not found or not visible"}},
)
async def get_export(export_id: ExportId, services: ServicesDep, principal: Reader) -> ExportPublic:
    return ExportPublic.of_record(await _visible_export(export_id, services, principal))


@router.delete(
    "/{export_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete an export (its clip, then its row)",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "Under a legal hold"},
    },
)
async def delete_export(export_id: ExportId, services: ServicesDep, principal: Writer) -> Response:
    rec = await _visible_export(export_id, services, principal)
    repo = _exports(services)
    held = await run_in_threadpool(
        lambda: load_holds(
            HoldRepository(services.engine), IncidentRepository(services.engine)
        ).export_holder(rec.id, rec.camera_id, rec.start_at, rec.end_at)
    )
    if held is not None:
        raise HTTPException(409, f"export {rec.id} is under legal hold {held}")
    await run_in_threadpool(services.objects.delete, rec.object_key)
    await run_in_threadpool(repo.delete, rec.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
