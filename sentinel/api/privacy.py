"""Privacy and retention routes: the audit log's verification against its anchors.

``GET /audit/verify`` runs what ``sentinel audit verify`` runs (``sentinel.retention.anchoring``):
the hash chain, the head row, and every anchor in the Object Lock bucket when anchoring is on.
The audit log covers every camera, so a camera-limited principal is refused (403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Security
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.gateway.roles import AUDIT_READ, Principal
from sentinel.retention.anchoring import verification_dict, verify_audit
from sentinel.store.audit_anchors import AnchorStoreError

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
