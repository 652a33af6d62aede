"""Alert routes: list (camera-scoped), acknowledge, and operators' verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Security
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.live import publish_verdict
from sentinel.api.records import RecordView
from sentinel.api.security import allowed_cameras, authorize
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import ALERTS_READ, ALERTS_WRITE, Principal
from sentinel.store.alert_repo import AlertRecord

router = APIRouter(prefix="/alerts", tags=["alerts"])

Reader = Annotated[Principal, Security(authorize, scopes=[ALERTS_READ])]
Writer = Annotated[Principal, Security(authorize, scopes=[ALERTS_WRITE])]
AlertId = Annotated[str, Path(max_length=64)]


class AlertPublic(RecordView):
    record = AlertRecord
    # Not in the response (they never were): token counts, the LLM's error, who judged when.
    hidden = frozenset(
        {
            "prompt_tokens",
            "completion_tokens",
            "parse_failures",
            "llm_error",
            "verdict_by",
            "verdict_at",
        }
    )

    id: str
    event_id: str
    incident_id: str | None = Field(description="The incident the alert is about, if any")
    camera_id: str
    label: str
    created_at: datetime
    updated_at: datetime
    status: str = Field(description="open, acknowledged or withdrawn (the LLM disagreed)")
    alert: bool
    severity: str
    summary: str
    reasons: list[str]
    recommended_action: str
    decided_by: str = Field(description="rules, or llm once the agent's verdict arrived")
    llm_status: str = Field(description="pending, done, shed, failed or skipped")
    prompt_version: str | None
    model: str | None
    backend: str | None
    latency_ms: float | None
    experiment_id: str | None
    variant: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    verdict: str | None
    verdict_note: str | None
    rule_id: str | None = Field(description="The operator's rule that matched, if any")
    rule_version: int | None = Field(description="The version of that rule that matched")
    rule_explanation: str | None = Field(
        description="Which rule matched and why (conditions, schedule, arming mode)"
    )


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next_cursor: str | None


class Feedback(StrictModel):
    verdict: Literal["true_positive", "false_positive"]
    note: str = Field("", max_length=2000)


async def _visible(services: Services, principal: Principal, alert_id: str) -> AlertRecord:
    record = await run_in_threadpool(services.agent.alerts.get, alert_id)
    allowed = await allowed_cameras(principal, services)
    if record is None or (allowed is not None and record.camera_id not in allowed):
        raise HTTPException(404, "alert not found")
    return record


@router.get("", response_model=AlertPage, summary="Alerts, newest first")
async def list_alerts(
    services: ServicesDep,
    principal: Reader,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["open", "acknowledged", "withdrawn"] | None, Query()] = None,
    severity: Annotated[
        Literal["info", "low", "medium", "high", "critical"] | None, Query()
    ] = None,
    alert: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertPage:
    if since is not None and until is not None and since > until:
        raise HTTPException(400, "`since` must not be after `until`")
    allowed = await allowed_cameras(principal, services)
    try:
        records, next_cursor = await run_in_threadpool(
            lambda: services.agent.alerts.list(
                camera_ids=allowed,
                camera_id=camera_id,
                status=status,
                severity=severity,
                alert=alert,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )
        )
    except ValueError as exc:
        raise HTTPException(400, f"invalid query: {exc}") from exc
    return AlertPage(items=[AlertPublic.of_record(r) for r in records], next_cursor=next_cursor)


@router.get("/{alert_id}", response_model=AlertPublic, summary="One alert")
async def get_alert(alert_id: AlertId, services: ServicesDep, principal: Reader) -> AlertPublic:
    return AlertPublic.of_record(await _visible(services, principal, alert_id))


@router.post("/{alert_id}/ack", response_model=AlertPublic, summary="Acknowledge an alert")
async def acknowledge(alert_id: AlertId, services: ServicesDep, principal: Writer) -> AlertPublic:
    await _visible(services, principal, alert_id)
    try:
        record = await run_in_threadpool(
            services.agent.alerts.acknowledge, alert_id, principal.subject, datetime.now(UTC)
        )
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    if record is None:
        raise HTTPException(404, "alert not found")
    return AlertPublic.of_record(record)


@router.post("/{alert_id}/feedback", response_model=AlertPublic, summary="Operator's verdict")
async def feedback(
    alert_id: AlertId, body: Feedback, services: ServicesDep, principal: Writer
) -> AlertPublic:
    """Verdicts score prompt experiments now and feed the hard-example queue later."""
    await _visible(services, principal, alert_id)
    record = await run_in_threadpool(
        services.agent.alerts.feedback,
        alert_id,
        body.verdict,
        body.note,
        principal.subject,
        datetime.now(UTC),
    )
    if record is None:
        raise HTTPException(404, "alert not found")
    await publish_verdict(services, record)
    return AlertPublic.of_record(record)
