"""Hard-example mining routes: start a job over a camera's recordings, and follow it.

``POST /annotation/mine`` answers 202 with the job's id at once; the job scans the camera's
recorded segments over ``[start, end]`` (in the platform as Ray tasks), chooses up to
``budget`` frames by expected value and puts them in the annotation queue.
``GET /annotation/mine/{id}`` reports its state and counts, ``GET /annotation/mine`` the
newest jobs first. The statuses are kept in the database: they survive a restart, and a job a
restart interrupted reads "failed" with the reason. All need ``models:admin``; a camera the
caller may not see is a 404, as is a job about one, and the list leaves such jobs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Security
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import MiningServices, Services, ServicesDep
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import MODELS_ADMIN, Principal
from sentinel.train.mine_service import MiningJob, MiningRequest

router = APIRouter(prefix="/annotation/mine", tags=["annotation"])

Admin = Annotated[Principal, Security(authorize, scopes=[MODELS_ADMIN])]
JobId = Annotated[str, Path(max_length=64)]


class MineBody(StrictModel):
    camera_id: str = Field(min_length=1, max_length=64)
    start: AwareDatetime = Field(description="Start of the stretch to mine (with a time zone).")
    end: AwareDatetime = Field(description="End of the stretch (after start).")
    budget: int = Field(50, ge=1, le=10_000, description="Most frames to queue.")


class MineAccepted(BaseModel):
    id: str


class MiningJobPublic(BaseModel):
    id: str
    camera_id: str
    start: datetime
    end: datetime
    budget: int
    state: Literal["queued", "running", "done", "failed"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None
    created_by: str | None = Field(None, description="Who submitted it (null: not known).")
    chunks: int = Field(description="Recorded segments in the stretch.")
    chunks_skipped: int = Field(description="Segments that could not be read (skipped).")
    frames_scanned: int
    frames_skipped: int = Field(description="Frames that did not decode (skipped).")
    chosen: int
    enqueued: int
    duplicates: int = Field(description="Chosen frames the queue already held (near-duplicates).")
    item_ids: list[str] = Field(description="The queued items' ids.")
    reasons: dict[str, int] = Field(description="Chosen frames per reason.")
    errors: list[str]
    error: str | None = Field(description="Why the job failed, if it did.")
    model_version: int | None = Field(
        None, description="The registry version (the champion) that scanned; null: no registry."
    )

    @classmethod
    def of(cls, job: MiningJob) -> MiningJobPublic:
        return cls(**job.as_dict())


def _invalid(field: str, msg: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (``loc``/``msg``/``type``), naming the field."""
    return RequestValidationError([{"loc": ("body", field), "msg": msg, "type": "value_error"}])


def _mining(services: Services) -> MiningServices:
    if services.mining is None:
        raise HTTPException(503, "hard-example mining is not available in this deployment")
    return services.mining


@router.post(
    "", status_code=202, response_model=MineAccepted, summary="Mine hard examples into the queue"
)
async def mine(body: MineBody, services: ServicesDep, principal: Admin) -> MineAccepted:
    mining = _mining(services)
    if body.end <= body.start:
        raise _invalid("end", "end must be after start")
    if body.end - body.start > timedelta(hours=mining.max_span_h):
        raise _invalid("end", f"the stretch may be at most {mining.max_span_h:g} hours long")
    if body.budget > mining.max_budget:
        raise _invalid("budget", f"budget may be at most {mining.max_budget}")
    await require_camera(principal, services, body.camera_id)
    if await run_in_threadpool(services.cameras.get, body.camera_id) is None:
        raise HTTPException(404, "camera not found")
    job_id = await mining.service.submit(
        MiningRequest(body.camera_id, body.start, body.end, body.budget), principal.subject
    )
    return MineAccepted(id=job_id)


@router.get("", response_model=list[MiningJobPublic], summary="Mining jobs, newest first")
async def mining_jobs(
    services: ServicesDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=200, description="Most jobs to list.")] = 50,
) -> list[MiningJobPublic]:
    mining = _mining(services)
    cameras = await allowed_cameras(principal, services)
    jobs = await mining.service.jobs(limit=limit, camera_ids=cameras)
    return [MiningJobPublic.of(job) for job in jobs]


@router.get("/{job_id}", response_model=MiningJobPublic, summary="A mining job's progress")
async def mining_job(job_id: JobId, services: ServicesDep, principal: Admin) -> MiningJobPublic:
    job = await _mining(services).service.status(job_id)
    if job is None:
        raise HTTPException(404, "mining job not found")
    await require_camera(principal, services, job.camera_id)
    return MiningJobPublic.of(job)
