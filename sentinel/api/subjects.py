"""Data-subject requests (GDPR access and erasure, issue 16): ``/privacy/requests``.

``privacy:admin`` only; camera limits apply (a camera-limited admin's request only reaches
its cameras, and it only sees requests limited to cameras it may see). The subject is a face
photo (multipart: the JSON fields in the form field ``request``, the photo in ``photo``; it
must show one face, else 422 with the reason; the photo is not stored, only the events it
matched), a camera and a time range, or event and incident ids (JSON body).

The request runs at once on a worker thread, bounded by the subject's size (``max_events``
events; a bigger subject is 422: split it by time range), and answers 201 with its status
and report: ``done``, ``partial`` (legal holds kept some items: listed per store) or
``failed`` (the failed store, its error, and the stores not run yet: ``pending``).
``POST /privacy/requests/{id}/resume`` runs the unfinished steps again. An access request's
zip is ``GET /privacy/requests/{id}/archive``. Every request and every step is an audit entry
(the middleware for the HTTP call, ``sentinel.retention.requests`` for each step).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.faces import PHOTO_BODY
from sentinel.api.security import allowed_cameras, authorize
from sentinel.api.uploads import invalid_upload
from sentinel.config import CAMERA_ID_PATTERN
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import PRIVACY_ADMIN, Principal
from sentinel.retention.face_index import FaceQueryError
from sentinel.retention.requests import (
    RequestBusy,
    RequestRunner,
    SubjectStores,
    SubjectTooLargeError,
)
from sentinel.retention.subjects import Subject, new_steps
from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import ObjectNotFound
from sentinel.store.subject_repo import PrivacyRequestRecord, PrivacyRequestRepository, SubjectData
from sentinel.train.erasure import DatasetEraser, MlflowArtifacts

router = APIRouter(tags=["privacy"])

Admin = Annotated[Principal, Security(authorize, scopes=[PRIVACY_ADMIN])]
RequestId = Annotated[str, PathParam(max_length=64)]
_NOT_FOUND = "privacy request not found"
_ID = Annotated[str, Field(min_length=1, max_length=64)]

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "JSON (`SubjectRequestCreate`) for a camera range or ids; multipart "
        "with the JSON in the field `request` and a photo of one face in `photo`.",
        "content": {
            "application/json": {"schema": None},  # SubjectRequestCreate's, set below
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "request": {"type": "string", "description": "SubjectRequestCreate"},
                        "photo": PHOTO_BODY["requestBody"]["content"]["image/jpeg"]["schema"],
                    },
                    "required": ["request", "photo"],
                }
            },
        },
    }
}


class SubjectRequestCreate(StrictModel):
    """A subject request: ``kind`` and the subject, as a camera range or as ids (or a face
    photo, sent as multipart)."""

    kind: Literal["access", "erasure"]
    camera_id: str | None = Field(None, pattern=CAMERA_ID_PATTERN, description="Range: camera.")
    start_at: datetime | None = Field(None, description="Range: from (tz-aware).")
    end_at: datetime | None = Field(None, description="Range: to (tz-aware).")
    event_ids: list[_ID] = Field(default_factory=list, max_length=1000)
    incident_ids: list[_ID] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> SubjectRequestCreate:
        ranged = (self.camera_id, self.start_at, self.end_at)
        if any(v is not None for v in ranged):
            if any(v is None for v in ranged):
                raise ValueError("a camera range needs camera_id, start_at and end_at")
            assert self.start_at is not None and self.end_at is not None
            for when in (self.start_at, self.end_at):
                if when.tzinfo is None or when.utcoffset() is None:
                    raise ValueError("start_at and end_at must be timezone-aware")
            if self.end_at <= self.start_at:
                raise ValueError("end_at must be after start_at")
            if (self.end_at - self.start_at).total_seconds() > 366 * 86400:
                raise ValueError("a camera range spans at most 366 days")
            if self.event_ids or self.incident_ids:
                raise ValueError("give a camera range or ids, not both")
        return self

    def subject(self) -> Subject | None:
        """The subject given in the fields; None when none is (a photo must come)."""
        if self.camera_id is not None:
            return Subject("range", self.camera_id, self.start_at, self.end_at)
        if self.event_ids or self.incident_ids:
            return Subject(
                "ids",
                event_ids=tuple(sorted(set(self.event_ids))),
                incident_ids=tuple(sorted(set(self.incident_ids))),
            )
        return None


_REQUEST_BODY["requestBody"]["content"]["application/json"]["schema"] = (
    SubjectRequestCreate.model_json_schema()
)


class StepPublic(BaseModel):
    """One store's outcome."""

    store: str
    status: str = Field(description="pending (not run yet), done, held (done but held items "
                        "kept), failed.")  # fmt: skip
    counts: dict[str, int]
    ids: list[str] = Field(description="What it erased or archived (the first 200).")
    held: list[dict[str, str]] = Field(description="Items kept by legal holds: id, hold_id.")
    errors: list[str]
    attempts: int


class SubjectRequestPublic(BaseModel):
    """A subject request, its status and its report per store."""

    id: str
    kind: str
    status: str = Field(description="pending, running, done, partial (holds kept items), failed")
    subject: dict[str, Any]
    cameras: list[str] | None = Field(description="The cameras it may reach; null: all.")
    steps: list[StepPublic]
    report: str | None
    archive_url: str | None = Field(description="The access archive, once stored.")
    requested_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rec: PrivacyRequestRecord) -> SubjectRequestPublic:
        return cls(
            id=rec.id,
            kind=rec.kind,
            status=rec.status,
            subject=rec.subject,
            cameras=rec.cameras,
            steps=[StepPublic(**s) for s in rec.steps],
            report=rec.report,
            archive_url=(f"/api/v1/privacy/requests/{rec.id}/archive" if rec.archive_key else None),
            requested_by=rec.requested_by,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
        )


class SubjectRequestList(BaseModel):
    items: list[SubjectRequestPublic]


def subject_stores(services: Services) -> SubjectStores:
    """The stores a request reaches, from the API's services."""
    search = services.search
    training = services.training
    return SubjectStores(
        engine=services.engine,
        objects=services.objects,
        archive=services.archive.archive if services.archive is not None else None,
        index=search.service.index if search is not None else None,
        appearance=search.service.appearance if search is not None else None,
        datasets=DatasetEraser(
            services.objects, DatasetRepo(services.engine), SubjectData(services.engine)
        ),
        artifacts=(
            MlflowArtifacts(training.mlflow_uri)
            if training is not None and training.mlflow_uri
            else None
        ),
        audit=services.security.audit,
    )


def _invalid(field: str, msg: str) -> RequestValidationError:
    return invalid_upload(field, msg)


async def _read_body(
    request: Request, services: Services
) -> tuple[SubjectRequestCreate, bytes | None]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        try:
            raw = await request.body()
            return SubjectRequestCreate.model_validate_json(raw or b"null"), None
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
    limit = services.faces.settings.max_upload_bytes if services.faces is not None else 1 << 20
    try:
        form = await request.form(max_files=1, max_fields=4)
    except StarletteHTTPException as exc:
        raise _invalid("request", f"malformed multipart body: {exc.detail}") from exc
    try:
        fields = form.get("request")
        photo = form.get("photo")
        if not isinstance(fields, str):
            raise _invalid("request", "the multipart body needs a field 'request' (JSON)")
        try:
            body = SubjectRequestCreate.model_validate_json(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        data = None
        if photo is not None:
            if not isinstance(photo, UploadFile):
                raise _invalid("photo", "the field 'photo' must be a file")
            data = await photo.read(limit + 1)
            if len(data) > limit:
                raise HTTPException(413, f"the photo is over {limit} bytes")
            if not data:
                raise _invalid("photo", "the photo is empty")
    finally:
        await form.close()
    return body, data


async def _require_visible_ids(services: Services, subject: Subject, allowed: set[str]) -> None:
    """404 for a camera-limited admin naming an event or incident that is missing or on a
    hidden camera (the same answer for both: a hidden camera's ids are not confirmed)."""
    data = SubjectData(services.engine)
    events = await run_in_threadpool(data.events, subject.event_ids, allowed)
    if len(events) < len(set(subject.event_ids)):
        raise HTTPException(404, "event not found")
    for incident_id in subject.incident_ids:
        found = await run_in_threadpool(IncidentRepository(services.engine).get, incident_id)
        if found is None or found.camera_id not in allowed:
            raise HTTPException(404, "incident not found")


def _visible(rec: PrivacyRequestRecord, allowed: set[str] | None) -> bool:
    if allowed is None:
        return True
    return rec.cameras is not None and set(rec.cameras) <= allowed


def _audit(request: Request, rec: PrivacyRequestRecord) -> None:
    request.state.audit_detail = {
        "privacy_request": rec.id,
        "kind": rec.kind,
        "status": rec.status,
        "subject": {k: v for k, v in rec.subject.items() if k != "distances"},
        "steps": {s["store"]: s["status"] for s in rec.steps},
    }


async def _run(request: Request, services: Services, request_id: str) -> PrivacyRequestRecord:
    runner = RequestRunner(subject_stores(services))
    try:
        rec = await run_in_threadpool(runner.run, request_id)
    except RequestBusy as exc:
        raise HTTPException(409, str(exc)) from exc
    except SubjectTooLargeError as exc:
        failed = await run_in_threadpool(runner.requests.get, request_id)
        if failed is not None:
            _audit(request, failed)
        raise _invalid("request", str(exc)) from exc
    _audit(request, rec)
    return rec


@router.post(
    "/privacy/requests",
    status_code=status.HTTP_201_CREATED,
    response_model=SubjectRequestPublic,
    summary="Run a data-subject request: access (an archive) or erasure (every store)",
    openapi_extra=_REQUEST_BODY,
    responses={
        404: {
            "description": "The subject's camera, event or incident is hidden (or missing, "
            "for a camera-limited admin)"
        },
        413: {"description": "The photo is over the size limit"},
        422: {
            "description": "Malformed body, no subject, a photo without exactly one face, "
            "or a subject too large"
        },
    },
)
async def create_request(
    request: Request, services: ServicesDep, principal: Admin
) -> SubjectRequestPublic:
    body, photo = await _read_body(request, services)
    subject = body.subject()
    allowed = await allowed_cameras(principal, services)
    if photo is not None:
        if subject is not None:
            raise _invalid("photo", "give a photo, a camera range or ids: one subject only")
        index = services.faces
        if index is None:
            raise HTTPException(404, "face search is not enabled (settings: faces.enabled)")
        try:
            found = await run_in_threadpool(index.search_photo, photo, allowed)
        except FaceQueryError as exc:
            request.state.audit_detail = {"privacy_request": "refused", "reason": str(exc)}
            raise _invalid("photo", str(exc)) from exc
        subject = Subject(
            "face",
            event_ids=tuple(m.event_id for m in found.matches),
            distances=tuple(m.distance for m in found.matches),
        )
    if subject is None:
        raise _invalid("request", "no subject: give a photo, a camera range or event/incident ids")
    if subject.by == "range" and allowed is not None and subject.camera_id not in allowed:
        raise HTTPException(404, "camera not found")
    if subject.by == "ids" and allowed is not None:
        await _require_visible_ids(services, subject, allowed)
    repo = PrivacyRequestRepository(services.engine)
    rec = await run_in_threadpool(
        lambda: repo.create(
            kind=body.kind,
            subject=subject.to_json(),
            steps=[s.to_json() for s in new_steps(body.kind)],
            requested_by=principal.subject,
            cameras=allowed,
        )
    )
    return SubjectRequestPublic.of(await _run(request, services, rec.id))


@router.get(
    "/privacy/requests", response_model=SubjectRequestList, summary="Subject requests, newest first"
)
async def list_requests(
    services: ServicesDep,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SubjectRequestList:
    allowed = await allowed_cameras(principal, services)
    records = await run_in_threadpool(
        PrivacyRequestRepository(services.engine).list, limit=limit, offset=offset
    )
    return SubjectRequestList(
        items=[SubjectRequestPublic.of(r) for r in records if _visible(r, allowed)]
    )


async def _visible_request(
    request_id: str, services: Services, principal: Principal
) -> PrivacyRequestRecord:
    rec = await run_in_threadpool(PrivacyRequestRepository(services.engine).get, request_id)
    allowed = await allowed_cameras(principal, services)
    if rec is None or not _visible(rec, allowed):
        raise HTTPException(404, _NOT_FOUND)
    return rec


@router.get(
    "/privacy/requests/{request_id}",
    response_model=SubjectRequestPublic,
    summary="One subject request: its status and its report per store",
    responses={404: {"description": "Not found or not visible"}},
)
async def get_request(
    request_id: RequestId, services: ServicesDep, principal: Admin
) -> SubjectRequestPublic:
    return SubjectRequestPublic.of(await _visible_request(request_id, services, principal))


@router.post(
    "/privacy/requests/{request_id}/resume",
    response_model=SubjectRequestPublic,
    summary="Run a request's unfinished steps again (after a failure, or once a hold is released)",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "Running, or done already"},
    },
)
async def resume_request(
    request_id: RequestId, request: Request, services: ServicesDep, principal: Admin
) -> SubjectRequestPublic:
    rec = await _visible_request(request_id, services, principal)
    return SubjectRequestPublic.of(await _run(request, services, rec.id))


@router.get(
    "/privacy/requests/{request_id}/archive",
    summary="The zip of an access request",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}},
        404: {"description": "Not found, not visible, or not an access request"},
        409: {"description": "The archive is not stored yet (the request did not finish)"},
    },
)
async def download_archive(
    request_id: RequestId, services: ServicesDep, principal: Admin
) -> Response:
    rec = await _visible_request(request_id, services, principal)
    if rec.kind != "access":
        raise HTTPException(404, "an erasure request has no archive")
    if rec.archive_key is None:
        raise HTTPException(409, f"the archive is not stored yet (request {rec.status})")
    try:
        data = await run_in_threadpool(services.objects.get, rec.archive_key)
    except ObjectNotFound as exc:
        raise HTTPException(404, "the archive is gone") from exc
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="subject-{rec.id}.zip"'},
    )
