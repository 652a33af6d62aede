"""Privacy and retention routes: legal holds, and the audit log's verification.

``/holds`` (``privacy:admin``) places, lists and releases legal holds on a camera range, an
incident or an export; a held object is never swept (``sentinel.actors.retention``) nor
deleted (``DELETE /exports/{id}`` answers 409). Placing and releasing are audited by
``AuditMutations`` with the hold's fields. Camera limits apply: a hold on a hidden camera (or
its incident or export) answers 404.

``GET /audit/verify`` runs what ``sentinel audit verify`` runs (``sentinel.retention.anchoring``):
the hash chain, the head row, and every anchor in the Object Lock bucket when anchoring is on.
The audit log covers every camera, so a camera-limited principal is refused (403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Security, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.config import CAMERA_ID_PATTERN
from sentinel.domain.holds import validate_hold
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import AUDIT_READ, PRIVACY_ADMIN, Principal
from sentinel.retention.anchoring import verification_dict, verify_audit
from sentinel.store.audit_anchors import AnchorStoreError
from sentinel.store.hold_repo import HoldRecord, HoldRepository
from sentinel.store.incident_repo import IncidentRepository

router = APIRouter(tags=["privacy"])


def _every_camera(*scopes: str) -> Any:
    from sentinel.api.security import authorize_every_camera

    return Security(authorize_every_camera, scopes=list(scopes))


class AnchorPublic(BaseModel):
    """One anchor: entry ``seq`` hashed to ``hash`` when it was written (``at``)."""

    seq: int
    hash: str
    at: datetime
    source: str = Field(description="s3://bucket/key?versionId=...")
    lock_mode: str | None = Field(description="COMPLIANCE when locked; null: not locked.")
    locked_until: datetime | None


class AuditVerifyReport(BaseModel):
    """The audit log checked against its hash chain, its head row and its anchors."""

    ok: bool
    anchoring: bool = Field(description="Whether anchors are configured (audit_anchors).")
    checked: int = Field(description="Entries trusted before the first problem.")
    last_seq: int
    first_bad_seq: int | None = Field(description="The first entry known to disagree.")
    altered_after: int | None = Field(
        description="When an anchor disagrees: the altered entry is after this one."
    )
    reason: str | None
    anchors: int
    anchors_agreeing: int
    anchors_unlocked: int
    unanchored: int = Field(description="Entries after the newest anchor.")
    last_anchor: AnchorPublic | None
    invalid_anchors: list[str]


@router.get(
    "/audit/verify",
    response_model=AuditVerifyReport,
    summary="Verify the audit log against its hash chain and its Object Lock anchors",
    responses={503: {"description": "The anchor bucket cannot be read"}},
)
async def verify_audit_log(
    services: ServicesDep, _: Annotated[Principal, _every_camera(AUDIT_READ)]
) -> AuditVerifyReport:
    anchors = services.audit_anchors
    try:
        report = await run_in_threadpool(verify_audit, services.security.audit, anchors)
    except AnchorStoreError as exc:
        raise HTTPException(503, f"cannot read the audit anchors: {exc}") from exc
    return AuditVerifyReport(**verification_dict(report, anchored=anchors is not None))


Admin = Annotated[Principal, Security(authorize, scopes=[PRIVACY_ADMIN])]
HoldId = Annotated[str, PathParam(max_length=64)]
_NOT_FOUND = "hold not found"


class HoldCreate(StrictModel):
    """A legal hold: on ``camera_id`` from ``start_at`` to ``end_at`` (none: until released),
    on an incident (``target_id``: its span on its camera is held too) or on an export."""

    kind: Literal["camera_range", "incident", "export"]
    camera_id: str | None = Field(
        None, pattern=CAMERA_ID_PATTERN, description="The camera (camera_range only)."
    )
    start_at: datetime | None = Field(None, description="camera_range: held from (tz-aware).")
    end_at: datetime | None = Field(None, description="camera_range: held to; null: open.")
    target_id: str | None = Field(
        None, min_length=1, max_length=64, description="The incident's or export's id."
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why (case, request).")

    @model_validator(mode="after")
    def _check(self) -> HoldCreate:
        validate_hold(
            self.kind, start_at=self.start_at, end_at=self.end_at, target_id=self.target_id
        )
        if self.kind == "camera_range" and self.camera_id is None:
            raise ValueError("a camera_range hold needs camera_id")
        if self.kind != "camera_range" and self.camera_id is not None:
            raise ValueError(f"an {self.kind} hold takes its camera from the {self.kind}")
        if not self.reason.strip():
            raise ValueError("reason must not be blank")
        return self


class HoldPublic(BaseModel):
    """A legal hold; active while ``released_at`` is null."""

    id: str
    kind: str
    camera_id: str
    target_id: str | None
    start_at: datetime | None
    end_at: datetime | None
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    active: bool

    @classmethod
    def of(cls, rec: HoldRecord) -> HoldPublic:
        return cls(
            id=rec.id,
            kind=rec.kind,
            camera_id=rec.camera_id,
            target_id=rec.target_id,
            start_at=rec.start_at,
            end_at=rec.end_at,
            reason=rec.reason,
            created_by=rec.created_by,
            created_at=rec.created_at,
            released_at=rec.released_at,
            released_by=rec.released_by,
            active=rec.active,
        )


class HoldList(BaseModel):
    items: list[HoldPublic]


def _audit(request: Request, rec: HoldRecord) -> None:
    request.state.audit_detail = {
        "hold_id": rec.id,
        "kind": rec.kind,
        "camera_id": rec.camera_id,
        "target_id": rec.target_id,
        "start_at": None if rec.start_at is None else rec.start_at.isoformat(),
        "end_at": None if rec.end_at is None else rec.end_at.isoformat(),
        "reason": rec.reason,
    }


async def _target_camera(body: HoldCreate, services: Services, principal: Principal) -> str:
    """The held object's camera, checked visible (404 for a missing or hidden one)."""
    if body.kind == "camera_range":
        assert body.camera_id is not None  # checked by the model
        await require_camera(principal, services, body.camera_id)
        return body.camera_id
    assert body.target_id is not None
    camera_id: str | None = None
    if body.kind == "incident":
        incident = await run_in_threadpool(IncidentRepository(services.engine).get, body.target_id)
        camera_id = None if incident is None else incident.camera_id
    elif services.exports is not None:
        export = await run_in_threadpool(services.exports.get, body.target_id)
        camera_id = None if export is None else export.camera_id
    allowed = await allowed_cameras(principal, services)
    if camera_id is None or (allowed is not None and camera_id not in allowed):
        raise HTTPException(404, f"{body.kind} not found")
    return camera_id


async def _visible_hold(hold_id: str, services: Services, principal: Principal) -> HoldRecord:
    rec = await run_in_threadpool(HoldRepository(services.engine).get, hold_id)
    allowed = await allowed_cameras(principal, services)
    if rec is None or (allowed is not None and rec.camera_id not in allowed):
        raise HTTPException(404, _NOT_FOUND)
    return rec


@router.post(
    "/holds",
    status_code=status.HTTP_201_CREATED,
    response_model=HoldPublic,
    summary="Place a legal hold on a camera range, an incident or an export",
    responses={404: {"description": "The camera, incident or export is missing or hidden"}},
)
async def create_hold(
    body: HoldCreate, request: Request, services: ServicesDep, principal: Admin
) -> HoldPublic:
    camera_id = await _target_camera(body, services, principal)
    rec = await run_in_threadpool(
        lambda: HoldRepository(services.engine).create(
            kind=body.kind,
            camera_id=camera_id,
            reason=body.reason,
            created_by=principal.subject,
            start_at=body.start_at,
            end_at=body.end_at,
            target_id=body.target_id,
        )
    )
    _audit(request, rec)
    return HoldPublic.of(rec)


@router.get("/holds", response_model=HoldList, summary="Legal holds, newest first")
async def list_holds(
    services: ServicesDep,
    principal: Admin,
    active: Annotated[bool, Query(description="Only the holds not released.")] = True,
) -> HoldList:
    allowed = await allowed_cameras(principal, services)
    records = await run_in_threadpool(
        lambda: HoldRepository(services.engine).list(active_only=active, cameras=allowed)
    )
    return HoldList(items=[HoldPublic.of(r) for r in records])


@router.get(
    "/holds/{hold_id}",
    response_model=HoldPublic,
    summary="One legal hold",
    responses={404: {"description": "Not found or not visible"}},
)
async def get_hold(hold_id: HoldId, services: ServicesDep, principal: Admin) -> HoldPublic:
    return HoldPublic.of(await _visible_hold(hold_id, services, principal))


@router.delete(
    "/holds/{hold_id}",
    response_model=HoldPublic,
    summary="Release a legal hold (what it kept is swept like anything else from then on)",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "Already released"},
    },
)
async def release_hold(
    hold_id: HoldId, request: Request, services: ServicesDep, principal: Admin
) -> HoldPublic:
    rec = await _visible_hold(hold_id, services, principal)
    released = await run_in_threadpool(
        HoldRepository(services.engine).release, rec.id, principal.subject
    )
    if released is None:
        raise HTTPException(409, f"hold {rec.id} was released already")
    _audit(request, released)
    return HoldPublic.of(released)
