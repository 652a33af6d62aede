"""Face search for subject requests (issue 16): ``POST /privacy/faces/search``.

``privacy:admin`` only, camera limits applied (a limited admin only finds events of its
cameras). The photo (JPEG or PNG, raw body or the multipart file field ``photo``) must show
exactly one face; 422 says why otherwise. The answer lists the matching events, nearest
first; the photo and its embedding are not stored. Every search is an audit entry (the
``AuditMutations`` middleware) with how many events matched and which.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.api.security import allowed_cameras, authorize
from sentinel.api.uploads import invalid_upload, read_upload
from sentinel.gateway.roles import PRIVACY_ADMIN, Principal
from sentinel.retention.face_index import FaceIndex, FaceQueryError

router = APIRouter(tags=["privacy"])

FACES_SEARCH_PATH = "/api/v1/privacy/faces/search"
_BINARY = {"type": "string", "format": "binary"}
PHOTO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A photo of one face (JPEG or PNG), raw or as the multipart file "
        "field `photo`.",
        "content": {
            "image/jpeg": {"schema": _BINARY},
            "image/png": {"schema": _BINARY},
            "application/octet-stream": {"schema": _BINARY},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"photo": _BINARY},
                    "required": ["photo"],
                }
            },
        },
    }
}


class FaceMatchPublic(BaseModel):
    """An event with a face like the photo's."""

    event_id: str
    camera_id: str
    label: str
    started_at: datetime
    ended_at: datetime | None
    distance: float = Field(description="Embedding distance; below 0.6 is likely the same.")


class FaceSearchResult(BaseModel):
    """The events whose faces match the photo's one face, nearest first."""

    matches: list[FaceMatchPublic]
    tolerance: float = Field(description="The largest distance counted as a match.")
    candidates: int = Field(description="Sealed prints opened (in the probed buckets).")
    buckets: int = Field(description="Keyed buckets probed.")
    detect_ms: float = Field(description="Finding and embedding the photo's face.")
    search_ms: float = Field(description="Reading, opening and comparing the candidates.")


def _index(services: ServicesDep) -> FaceIndex:
    if services.faces is None:
        raise HTTPException(404, "face search is not enabled (settings: faces.enabled)")
    return services.faces


def _invalid(msg: str, kind: str = "value_error") -> RequestValidationError:
    return invalid_upload("photo", msg, kind)


async def read_photo(request: Request, limit: int) -> bytes:
    """The photo of the request: the multipart file field ``photo``, or the raw body (422 when
    missing or malformed, 413 over ``limit`` bytes)."""
    return await read_upload(request, limit, field="photo", what="photo", send="a JPEG or PNG")


@router.post(
    "/privacy/faces/search",
    response_model=FaceSearchResult,
    summary="Find the events showing the face of a photo (subject requests)",
    openapi_extra=PHOTO_BODY,
    responses={
        404: {"description": "Face search is not enabled"},
        413: {"description": "The photo is over the size limit"},
        422: {"description": "Not an image, no face, or more than one face"},
    },
)
async def search_faces(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[PRIVACY_ADMIN])],
) -> FaceSearchResult:
    """Matches the photo's one face against the sealed face prints of the events on the
    cameras the caller may see. 422 with the reason for a photo that is not a JPEG or PNG,
    shows no face, or shows several."""
    index = _index(services)
    data = await read_photo(request, index.settings.max_upload_bytes)
    allowed = await allowed_cameras(principal, services)
    try:
        result = await run_in_threadpool(index.search_photo, data, allowed)
    except FaceQueryError as exc:
        request.state.audit_detail = {"faces_search": "refused", "reason": str(exc)}
        raise _invalid(str(exc)) from exc
    request.state.audit_detail = {
        "faces_search": "done",
        "matches": len(result.matches),
        "event_ids": [m.event_id for m in result.matches[:50]],
        "candidates": result.candidates,
    }
    return FaceSearchResult(
        matches=[
            FaceMatchPublic(
                event_id=m.event_id,
                camera_id=m.camera_id,
                label=m.label,
                started_at=m.started_at,
                ended_at=m.ended_at,
                distance=m.distance,
            )
            for m in result.matches
        ],
        tolerance=index.settings.tolerance,
        candidates=result.candidates,
        buckets=result.buckets,
        detect_ms=result.detect_ms,
        search_ms=result.search_ms,
    )
