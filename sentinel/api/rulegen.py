"""RuleGen routes: its suggestions (list, accept, reject), a run now, and backtests of rules.

Reading suggestions needs ``alerts:read``; deciding them and running RuleGen needs ``admin``;
backtesting a rule reads the event history, so it needs ``alerts:read`` and ``events:read``.

Camera limits hold as for rules: a camera-limited principal sees the suggestions about its
cameras only (a tightening is about a rule, which may cover any camera: it is left out), gets
404 for any other, and its backtests count its cameras' events only. A run mines every
camera's history, so it is refused (403) to camera-limited principals.

Accepting a rule suggestion writes the rule through the same checks as ``POST /rules`` (422
when it could never match or names an unknown camera, zone or line; 403 outside the caller's
cameras), at version 1; accepting a tightening writes the rule's next version; accepting a
mask records the decision and returns the object mask to add to the camera. Only a suggested
suggestion can be decided (409 otherwise). Every change is audited (``AuditMutations``), with
the suggestion, the rule and version written, or the run's counts in the detail.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from sentinel.api.cameras import apply_scene
from sentinel.api.deps import Services, ServicesDep
from sentinel.api.rules import (
    Admin,
    Reader,
    RuleId,
    RulePublic,
    SiteAdmin,
    _audit,
    _check_writable,
    _require_rule,
    _unprocessable,
    _validate,
)
from sentinel.api.rules import Tester as HistoryReader
from sentinel.api.security import allowed_cameras
from sentinel.config import (
    MAX_SCENE_ITEMS,
    SCENE_FIELDS,
    CameraConfig,
    CameraScene,
    ObjectMaskConfig,
)
from sentinel.gateway.roles import Principal
from sentinel.rules.job import (
    backtest_rule,
    frame_sizes,
    history_since,
    run_job,
    store_suggestions,
)
from sentinel.rules.rulegen import RuleGenSettings, Suggestion
from sentinel.rules.schedule import AUDIT_ACTION, AUDIT_ACTOR, next_run
from sentinel.rules.suggestions import ACCEPTED, REJECTED, NotOpen, decide, proposed_rule, tightened
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.camera_secrets import public_camera
from sentinel.store.rule_repo import (
    AlreadyDecided,
    RuleConflict,
    RuleRepository,
    SuggestionRecord,
    SuggestionRepository,
)

router = APIRouter(tags=["rulegen"])

SuggestionId = Annotated[str, Path(max_length=64)]
Days = Annotated[
    float | None,
    Query(gt=0, le=3650, description="History window in days, ending now; default: the site's."),
]


class BacktestPublic(BaseModel):
    """What a rule or mask would have done over the history."""

    matched: int = Field(description="A rule's alerts; a mask's dropped detections.")
    per_day: float | None = Field(description="matched per day of the history's span.")
    days: float = Field(description="The span: first to last event (at least one day).")
    true_positives: int
    false_positives: int
    unjudged: int
    precision: float | None = Field(description="tp / (tp + fp); null when none was judged.")
    recall: float | None = Field(
        description="tp over all true verdicts on its cameras (for a mask: the share lost)."
    )
    cpu_share: float = Field(description="Share of its cameras' detector work a mask saves.")


class SuggestionPublic(BaseModel):
    id: str
    kind: Literal["mask", "rule", "tightening"]
    camera_id: str | None = Field(description="The camera; null for a tightening.")
    status: Literal["suggested", "accepted", "rejected"]
    proposal: dict[str, Any] = Field(
        description="mask: camera_id, label, polygon, object_mask; rule: rule (without id), "
        "zone, label, start_hour, end_hour, events_per_week; tightening: rule_id, min_score."
    )
    backtest: BacktestPublic | None
    reason: str | None
    created_at: datetime
    updated_at: datetime | None = Field(description="When a later run refreshed the figures.")
    decided_by: str | None
    decided_at: datetime | None
    rule_id: str | None = Field(description="The rule its acceptance created or tightened.")

    @classmethod
    def of(cls, record: SuggestionRecord) -> SuggestionPublic:
        try:
            figures = None if record.backtest is None else BacktestPublic(**record.backtest)
        except (TypeError, ValidationError):  # a row from before figures had this shape
            figures = None
        return cls(
            id=record.id,
            kind=record.kind,
            camera_id=record.camera_id,
            status=record.status,
            proposal=record.body,
            backtest=figures,
            reason=record.reason,
            created_at=record.created_at,
            updated_at=record.updated_at,
            decided_by=record.decided_by,
            decided_at=record.decided_at,
            rule_id=record.rule_id,
        )


class Accepted(BaseModel):
    suggestion: SuggestionPublic
    rule: RulePublic | None = Field(None, description="The rule written (rule, tightening).")
    object_mask: ObjectMaskConfig | None = Field(
        None, description="For a mask: the object mask now in the camera's scene."
    )


class RunReport(BaseModel):
    engine: str
    since: datetime | None = Field(description="Start of the history read; null: all of it.")
    found: int = Field(description="Suggestions the run made.")
    created: int = Field(description="New ones stored.")
    updated: int = Field(description="Open ones whose figures were refreshed.")
    kept: int = Field(description="Decided ones left as they are (not suggested again).")


class RuleBacktestPublic(BaseModel):
    rule_id: str
    version: int
    since: datetime | None
    events: int = Field(description="Events in the history read.")
    backtest: BacktestPublic
    notes: list[str] = Field(description="What the history cannot tell about this rule.")


def _suggestions(services: Services) -> SuggestionRepository:
    return SuggestionRepository(services.engine)


def _rules(services: Services) -> RuleRepository:
    return RuleRepository(services.engine)


def _visible(record: SuggestionRecord, allowed: set[str] | None) -> bool:
    return allowed is None or (record.camera_id is not None and record.camera_id in allowed)


async def _require(
    suggestion_id: str, services: Services, principal: Principal
) -> tuple[SuggestionRecord, set[str] | None]:
    record = await run_in_threadpool(_suggestions(services).get, suggestion_id)
    allowed = await allowed_cameras(principal, services)
    if record is None or not _visible(record, allowed):
        raise HTTPException(404, "suggestion not found")
    return record, allowed


def _open(record: SuggestionRecord, decision: str) -> None:
    try:
        decide(record.status, decision)
    except NotOpen as exc:
        raise HTTPException(409, str(exc)) from exc


async def _decide(
    services: Services, suggestion_id: str, decision: str, who: str, rule_id: str | None = None
) -> SuggestionRecord:
    try:
        return await run_in_threadpool(
            lambda: _suggestions(services).decide(suggestion_id, decision, who, rule_id=rule_id)
        )
    except AlreadyDecided as exc:  # another operator was quicker
        raise HTTPException(409, str(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, "suggestion not found") from exc


@router.get(
    "/rules/suggestions",
    response_model=list[SuggestionPublic],
    summary="RuleGen's suggestions, newest first",
)
async def list_suggestions(
    services: ServicesDep,
    principal: Reader,
    status: Annotated[Literal["suggested", "accepted", "rejected"] | None, Query()] = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SuggestionPublic]:
    allowed = await allowed_cameras(principal, services)
    records = await run_in_threadpool(
        lambda: _suggestions(services).list(
            status=status, camera_id=camera_id, camera_ids=allowed, limit=limit
        )
    )
    return [SuggestionPublic.of(r) for r in records]


@router.get(
    "/rules/suggestions/{suggestion_id}", response_model=SuggestionPublic, summary="One suggestion"
)
async def get_suggestion(
    suggestion_id: SuggestionId, services: ServicesDep, principal: Reader
) -> SuggestionPublic:
    record, _ = await _require(suggestion_id, services, principal)
    return SuggestionPublic.of(record)


@router.post(
    "/rules/suggestions/{suggestion_id}/accept",
    response_model=Accepted,
    summary="Accept a suggestion: write its rule, or get its mask",
)
async def accept_suggestion(
    suggestion_id: SuggestionId, request: Request, services: ServicesDep, principal: Admin
) -> Accepted:
    """A rule suggestion becomes a rule (checked as ``POST /rules``; 422 when it cannot work);
    a tightening becomes its rule's next version (409 when the rule is gone); a mask joins the
    camera's object masks (its edited scene, as ``PUT /cameras/{id}/scene``; the camera
    restarts with it; 409 when the camera is gone or has no room). 409 when the suggestion was
    decided already."""
    record, allowed = await _require(suggestion_id, services, principal)
    _open(record, ACCEPTED)
    who = principal.subject
    if record.kind == "mask":
        try:
            mask = ObjectMaskConfig.model_validate(record.body["object_mask"])
        except (KeyError, ValidationError) as exc:
            raise _unprocessable([f"the stored mask is not valid: {exc}"]) from exc
        if record.camera_id is None:
            raise _unprocessable(["the stored mask names no camera"])
        camera_id = record.camera_id
        scene = await _scene_with(services, camera_id, mask)
        decided = await _decide(services, suggestion_id, ACCEPTED, who)
        try:
            await apply_scene(services, camera_id, scene)
        except BaseException:
            await run_in_threadpool(_suggestions(services).reopen, suggestion_id, who)
            raise
        _audit(request, suggestion_id=suggestion_id, kind="mask", camera_id=record.camera_id)
        return Accepted(suggestion=SuggestionPublic.of(decided), object_mask=mask)
    if record.kind == "rule":
        try:
            rule = proposed_rule(record.body)
        except (KeyError, ValidationError) as exc:
            raise _unprocessable([f"the suggested rule is not valid: {exc}"]) from exc
        _check_writable(rule, allowed)
        await _validate(rule, services)
        decided = await _decide(services, suggestion_id, ACCEPTED, who, rule.id)
        try:
            written = await run_in_threadpool(_rules(services).create, rule, who)
        except BaseException:
            await run_in_threadpool(_suggestions(services).reopen, suggestion_id, who)
            raise
    else:  # tightening
        rule_id = str(record.body.get("rule_id", ""))
        stored = await run_in_threadpool(_rules(services).get, rule_id)
        if stored is None:
            raise HTTPException(409, f"rule {rule_id} no longer exists")
        _check_writable(stored.rule, allowed)
        rule = tightened(stored.rule, float(record.body.get("min_score", 0.0)))
        await _validate(rule, services)
        decided = await _decide(services, suggestion_id, ACCEPTED, who, rule.id)
        try:
            written = await run_in_threadpool(
                _rules(services).update, rule, stored.rule.version, who
            )
        except (RuleConflict, LookupError) as exc:
            await run_in_threadpool(_suggestions(services).reopen, suggestion_id, who)
            raise HTTPException(409, f"the rule changed meanwhile: {exc}") from exc
        except BaseException:
            await run_in_threadpool(_suggestions(services).reopen, suggestion_id, who)
            raise
    _audit(
        request,
        suggestion_id=suggestion_id,
        kind=record.kind,
        rule_id=written.id,
        version=written.version,
    )
    stored_rule = await run_in_threadpool(_rules(services).get, written.id)
    return Accepted(
        suggestion=SuggestionPublic.of(decided),
        rule=RulePublic.of(written, allowed, stored_rule),
    )


async def _scene_with(services: Services, camera_id: str, mask: ObjectMaskConfig) -> CameraScene:
    """The camera's scene with ``mask`` among its object masks (409: no camera, no room)."""
    raw = await run_in_threadpool(services.cameras.get, camera_id)
    if raw is None:
        raise HTTPException(409, f"camera {camera_id} no longer exists")
    scene = CameraScene(**CameraConfig(**public_camera(raw)).model_dump(include=set(SCENE_FIELDS)))
    if mask in scene.object_masks:
        return scene
    if len(scene.object_masks) >= MAX_SCENE_ITEMS:
        raise HTTPException(409, f"camera {camera_id} has {MAX_SCENE_ITEMS} object masks already")
    return scene.model_copy(update={"object_masks": [*scene.object_masks, mask]})


@router.post(
    "/rules/suggestions/{suggestion_id}/reject",
    response_model=SuggestionPublic,
    summary="Reject a suggestion",
)
async def reject_suggestion(
    suggestion_id: SuggestionId, request: Request, services: ServicesDep, principal: Admin
) -> SuggestionPublic:
    """Later runs do not suggest it again. 409 when it was decided already."""
    record, _ = await _require(suggestion_id, services, principal)
    _open(record, REJECTED)
    decided = await _decide(services, suggestion_id, REJECTED, principal.subject)
    _audit(request, suggestion_id=suggestion_id, kind=record.kind)
    return SuggestionPublic.of(decided)


@router.post(
    "/rules/{rule_id}/backtest",
    response_model=RuleBacktestPublic,
    summary="What a rule would have done over the event history",
)
async def backtest(
    rule_id: RuleId, services: ServicesDep, principal: HistoryReader, days: Days = None
) -> RuleBacktestPublic:
    """The alerts it would have raised (per day), how many operators judged true or false,
    precision and recall, over the last ``days`` of history. A camera-limited caller's
    backtest counts its own cameras' events only. Nothing is stored."""
    stored, allowed = await _require_rule(rule_id, services, principal)
    rule = stored.rule
    since = history_since(datetime.now(UTC), days or services.rulegen.history_days)
    tested = await run_in_threadpool(
        lambda: backtest_rule(services.engine, rule, since=since, cameras=allowed)
    )
    notes = [] if allowed is None else ["counted on your cameras' events only"]
    figures = BacktestPublic(**dataclasses.asdict(tested.result))
    return RuleBacktestPublic(
        rule_id=rule.id,
        version=rule.version,
        since=since,
        events=tested.events,
        backtest=figures,
        notes=[*notes, *tested.notes],
    )


class ScheduledRun(BaseModel):
    at: datetime = Field(description="When it started.")
    outcome: str = Field(description="success or error.")
    detail: dict[str, Any] = Field(description="Counts (found, created, ...) or the error.")


class RuleGenStatus(BaseModel):
    engine: str
    interval_s: float | None = Field(description="Between scheduled runs; null: no schedule.")
    last_run: ScheduledRun | None = Field(description="The last scheduled run, if any.")
    next_run: datetime | None = Field(
        description="When the next scheduled run is due; null without a schedule, or before "
        "the first (due first_run_after_s after the platform started)."
    )


@router.get("/rulegen/status", response_model=RuleGenStatus, summary="RuleGen's schedule")
async def rulegen_status(services: ServicesDep, principal: Reader) -> RuleGenStatus:
    """The last scheduled run (from the audit log, so any process's) and the next one."""
    config = services.rulegen
    entries, _ = await run_in_threadpool(
        lambda: AuditRepository(services.engine).list(
            actor=AUDIT_ACTOR, action=AUDIT_ACTION, limit=1
        )
    )
    last = entries[0] if entries else None
    due = None
    if config.interval_s is not None and last is not None:
        due = next_run(last.at, datetime.now(UTC), config.interval_s)
    return RuleGenStatus(
        engine=config.engine,
        interval_s=config.interval_s,
        last_run=None
        if last is None
        else ScheduledRun(at=last.at, outcome=last.outcome, detail=dict(last.detail)),
        next_run=due,
    )


@router.post("/rulegen/run", response_model=RunReport, summary="Run RuleGen now")
async def run_rulegen(request: Request, services: ServicesDep, principal: SiteAdmin) -> RunReport:
    """Mines the history for mask, rule and tightening suggestions, backtests each and stores
    them: new ones are added, open ones get the new figures, decided ones are left alone.
    Refused (403) to camera-limited principals: it reads every camera's history."""
    config = services.rulegen
    sizes = frame_sizes(await services.control.statuses())
    settings: RuleGenSettings = dataclasses.replace(
        config.settings, frame_sizes={**config.settings.frame_sizes, **sizes}
    )
    since = history_since(datetime.now(UTC), config.history_days)

    def run() -> list[Suggestion]:
        if config.run is not None:
            return config.run(settings, since)
        return run_job(services.engine, settings, since=since)

    found = await run_in_threadpool(run)
    counts = await run_in_threadpool(
        lambda: store_suggestions(_suggestions(services), found, timezone=settings.timezone)
    )
    report = RunReport(engine=config.engine, since=since, **dataclasses.asdict(counts))
    _audit(
        request,
        found=counts.found,
        created=counts.created,
        updated=counts.updated,
        kept=counts.kept,
    )
    return report
