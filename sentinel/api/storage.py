"""Storage route: what the recordings use, per camera and in all, against the budget and disk.

Needs ``metrics:read``; a principal limited to some cameras sees only those cameras (and totals
over them), and of the last sweep only its cameras' deletions. The budget and the last sweep come
from the retention actor when it runs.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Security
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.api.security import allowed_cameras, authorize
from sentinel.gateway.roles import METRICS_READ, Principal
from sentinel.store.objects import LocalObjectStore, ObjectStore, unwrapped
from sentinel.store.recording_tables import SEGMENTS
from sentinel.store.sql import as_utc

router = APIRouter(tags=["storage"])

Reader = Annotated[Principal, Security(authorize, scopes=[METRICS_READ])]


class CameraStorage(BaseModel):
    camera_id: str
    bytes: int
    segments: int
    exported_bytes: int
    archived_bytes: int  # in the archive store (tiering); ``bytes`` counts them too
    archived_segments: int
    restored_bytes: int  # archived segments with a local copy restored for playback
    oldest_at: datetime | None
    newest_at: datetime | None


class Disk(BaseModel):
    total_bytes: int
    free_bytes: int


class StorageReport(BaseModel):
    """Recordings' storage: per camera, totals, the limits and the store's disk (local only)."""

    cameras: list[CameraStorage]
    total_bytes: int
    total_segments: int
    archived_bytes: int
    archived_segments: int
    archive: dict[str, Any] | None  # tiering's settings (None: the sweeper is not running)
    budget_bytes: int | None
    min_free_bytes: int | None
    disk: Disk | None
    last_sweep: dict[str, Any] | None


def _per_camera(engine: Engine) -> list[CameraStorage]:
    c = SEGMENTS.c
    exported = sa.func.sum(sa.case((c.exported == sa.true(), c.size), else_=0))
    archived = c.archived_at.is_not(None)
    query = (
        sa.select(
            c.camera_id,
            sa.func.sum(c.size),
            sa.func.count(),
            exported,
            sa.func.sum(sa.case((archived, c.size), else_=0)),
            sa.func.sum(sa.case((archived, 1), else_=0)),
            sa.func.sum(
                sa.case((sa.and_(archived, c.restored_until.is_not(None)), c.size), else_=0)
            ),
            sa.func.min(c.start_at),
            sa.func.max(c.end_at),
        )
        .group_by(c.camera_id)
        .order_by(c.camera_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        CameraStorage(
            camera_id=cam,
            bytes=int(total or 0),
            segments=int(count),
            exported_bytes=int(exp or 0),
            archived_bytes=int(arch or 0),
            archived_segments=int(narch or 0),
            restored_bytes=int(rest or 0),
            oldest_at=None if first is None else as_utc(first, "oldest"),
            newest_at=None if last is None else as_utc(last, "newest"),
        )
        for cam, total, count, exp, arch, narch, rest, first, last in rows
    ]


def _sweep_for(sweep: dict[str, Any] | None, allowed: set[str] | None) -> dict[str, Any] | None:
    """The last sweep as a caller allowed ``allowed`` cameras (None: all) may see it.

    A sweep spans every camera: its deletions name other cameras' segments, and its byte counts
    add theirs up. A limited caller gets its cameras' deletions and what they freed; the
    store-wide ``used_bytes`` is left out (the report's own totals cover its cameras).
    """
    if sweep is None or allowed is None:
        return sweep
    deleted = [d for d in sweep.get("deleted") or () if d.get("camera_id") in allowed]
    # Dataset and training-run names span cameras too (a dataset holds several cameras').
    scoped = {k: v for k, v in sweep.items() if k not in ("used_bytes", "artifacts")}
    scoped["deleted"] = deleted
    scoped["bytes_freed"] = sum(int(d.get("size") or 0) for d in deleted)
    return scoped


def _disk(store: ObjectStore) -> Disk | None:
    store = unwrapped(store)  # an encrypted local store is still a local disk
    if not isinstance(store, LocalObjectStore):
        return None
    usage = shutil.disk_usage(store.root)
    return Disk(total_bytes=usage.total, free_bytes=usage.free)


@router.get(
    "/storage",
    response_model=StorageReport,
    summary="Recording storage per camera, totals, budget and free space",
)
async def storage_report(services: ServicesDep, principal: Reader) -> StorageReport:
    cameras = await run_in_threadpool(_per_camera, services.engine)
    allowed = await allowed_cameras(principal, services)
    if allowed is not None:
        cameras = [c for c in cameras if c.camera_id in allowed]
    disk = await run_in_threadpool(_disk, services.objects)
    status = await services.storage.status() if services.storage is not None else None
    status = status or {}
    return StorageReport(
        cameras=cameras,
        total_bytes=sum(c.bytes for c in cameras),
        total_segments=sum(c.segments for c in cameras),
        archived_bytes=sum(c.archived_bytes for c in cameras),
        archived_segments=sum(c.archived_segments for c in cameras),
        archive=status.get("archive"),
        budget_bytes=status.get("budget_bytes"),
        min_free_bytes=status.get("min_free_bytes"),
        disk=disk,
        last_sweep=_sweep_for(status.get("last_sweep"), allowed),
    )
