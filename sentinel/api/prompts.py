"""Prompt versions, A/B experiments and agent backends.

Prompts and experiments judge every camera's alerts (and an experiment's report counts them
all), so they are refused to camera-limited principals; backends' health names no camera.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, Security
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.records import RecordView
from sentinel.api.security import authorize, authorize_every_camera
from sentinel.domain.experiments import Variant, VariantOutcome, VariantReport, report
from sentinel.domain.prompts import PromptError, validate_template
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import METRICS_READ, PROMPTS_ADMIN, Principal
from sentinel.store.alert_repo import AlertRecord
from sentinel.store.prompt_repo import ExperimentRecord, PromptRecord

router = APIRouter(tags=["agent"])

PromptAdmin = Annotated[Principal, Security(authorize_every_camera, scopes=[PROMPTS_ADMIN])]
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class PromptCreate(StrictModel):
    system: str = Field(min_length=1, max_length=20000)
    template: str = Field(min_length=1, max_length=20000)
    activate: bool = Field(False, description="Make this version the active one now.")


class PromptPublic(RecordView):
    record = PromptRecord
    derived = frozenset({"active"})

    name: str
    version: int
    system: str
    template: str
    created_at: datetime
    created_by: str | None
    active: bool


class VariantIn(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    prompt_version: int = Field(ge=1, le=1_000_000)
    weight: float = Field(gt=0, le=1000)


class ExperimentCreate(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    prompt_name: str = Field("alert", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    variants: list[VariantIn] = Field(min_length=2, max_length=8)


class Promote(StrictModel):
    variant: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")


class VariantReportPublic(RecordView):
    record = VariantReport

    variant: str
    events: int
    decisions: int
    alerts: int
    parse_failures: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mean_tokens: float
    true_positives: int
    false_positives: int
    false_alarm_rate: float | None
    false_alarm_ci95: tuple[float, float] | None


class ExperimentPublic(RecordView):
    record = ExperimentRecord
    derived = frozenset({"report"})

    id: str
    name: str
    prompt_name: str
    status: str
    winner: str | None
    variants: list[dict[str, Any]]
    created_at: datetime
    report: list[VariantReportPublic]


def _prompt_public(record: PromptRecord, active_version: int | None) -> PromptPublic:
    return PromptPublic.of_record(record, active=record.version == active_version)


@router.get("/prompts", response_model=list[PromptPublic], summary="Active prompt of each name")
async def list_prompts(services: ServicesDep, _: PromptAdmin) -> list[PromptPublic]:
    repo = services.agent.prompts
    out = []
    for name in await run_in_threadpool(repo.names):
        active = await run_in_threadpool(repo.active, name)
        if active is not None:
            out.append(_prompt_public(active, active.version))
    return out


@router.get("/prompts/{name}", response_model=list[PromptPublic], summary="All versions")
async def prompt_versions(name: Name, services: ServicesDep, _: PromptAdmin) -> list[PromptPublic]:
    repo = services.agent.prompts
    active = await run_in_threadpool(repo.active, name)
    versions = await run_in_threadpool(repo.versions, name)
    if not versions:
        raise HTTPException(404, "prompt not found")
    return [_prompt_public(v, active.version if active else None) for v in versions]


@router.post(
    "/prompts/{name}",
    response_model=PromptPublic,
    status_code=201,
    summary="Save a new version (its variables are checked now, not at 3 a.m.)",
)
async def create_prompt(
    name: Name, body: PromptCreate, services: ServicesDep, principal: PromptAdmin
) -> PromptPublic:
    try:
        validate_template(body.template)
        validate_template(body.system)
    except PromptError as exc:
        raise HTTPException(400, str(exc)) from exc
    repo = services.agent.prompts
    record = await run_in_threadpool(
        repo.create_version, name, body.system, body.template, principal.subject
    )
    if body.activate:
        await run_in_threadpool(repo.activate, name, record.version)
    active = await run_in_threadpool(repo.active, name)
    return _prompt_public(record, active.version if active else None)


@router.post(
    "/prompts/{name}/{version}/activate",
    response_model=PromptPublic,
    summary="Make a version active",
)
async def activate_prompt(
    name: Name,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    services: ServicesDep,
    _: PromptAdmin,
) -> PromptPublic:
    repo = services.agent.prompts
    record = await run_in_threadpool(repo.get, name, version)
    if record is None or not await run_in_threadpool(repo.activate, name, version):
        raise HTTPException(404, "prompt version not found")
    return _prompt_public(record, version)


@router.delete(
    "/prompts/{name}/{version}",
    status_code=204,
    response_class=Response,
    summary="Delete a version (not the active one)",
)
async def delete_prompt(
    name: Name,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    services: ServicesDep,
    _: PromptAdmin,
) -> Response:
    try:
        deleted = await run_in_threadpool(services.agent.prompts.delete_version, name, version)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    if not deleted:
        raise HTTPException(404, "prompt version not found")
    return Response(status_code=204)


def variant_outcomes(rows: Iterable[AlertRecord]) -> list[VariantOutcome]:
    """An experiment's alerts as the outcomes its report counts."""
    return [
        VariantOutcome(
            variant=r.variant or "",
            decided=r.llm_status == "done",
            alert=r.alert,
            parse_failure=r.parse_failures > 0,
            latency_ms=r.latency_ms,
            tokens=r.prompt_tokens + r.completion_tokens,
            verdict=r.verdict,
        )
        for r in rows
    ]


async def _experiment_public(services: Services, exp: ExperimentRecord) -> ExperimentPublic:
    rows = await run_in_threadpool(services.agent.alerts.experiment_rows, exp.id)
    reports = [VariantReportPublic.of_record(v) for v in report(variant_outcomes(rows))]
    return ExperimentPublic.of_record(
        exp,
        variants=[dataclasses.asdict(v) for v in exp.variants],
        report=reports,
    )


@router.get("/experiments", response_model=list[ExperimentPublic], summary="Experiments")
async def list_experiments(services: ServicesDep, _: PromptAdmin) -> list[ExperimentPublic]:
    exps = await run_in_threadpool(services.agent.experiments.list)
    return [await _experiment_public(services, e) for e in exps]


@router.post(
    "/experiments",
    response_model=ExperimentPublic,
    status_code=201,
    summary="Split events between prompt versions",
)
async def create_experiment(
    body: ExperimentCreate, services: ServicesDep, _: PromptAdmin
) -> ExperimentPublic:
    agent = services.agent
    for v in body.variants:
        if await run_in_threadpool(agent.prompts.get, body.prompt_name, v.prompt_version) is None:
            raise HTTPException(400, f"prompt {body.prompt_name} has no version {v.prompt_version}")
    if len({v.name for v in body.variants}) != len(body.variants):
        raise HTTPException(400, "variant names must be unique")
    if await run_in_threadpool(agent.experiments.running_for, body.prompt_name) is not None:
        raise HTTPException(409, f"an experiment on {body.prompt_name} is already running")
    variants = [Variant(v.name, str(v.prompt_version), v.weight) for v in body.variants]
    try:
        exp = await run_in_threadpool(
            agent.experiments.create, body.name, body.prompt_name, variants
        )
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    return await _experiment_public(services, exp)


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentPublic,
    summary="An experiment with its per-variant report",
)
async def get_experiment(
    experiment_id: Annotated[str, Path(max_length=64)], services: ServicesDep, _: PromptAdmin
) -> ExperimentPublic:
    exp = await run_in_threadpool(services.agent.experiments.get, experiment_id)
    if exp is None:
        raise HTTPException(404, "experiment not found")
    return await _experiment_public(services, exp)


@router.post(
    "/experiments/{experiment_id}/promote",
    response_model=ExperimentPublic,
    summary="Stop the experiment and make a variant's prompt the active one",
)
async def promote(
    experiment_id: Annotated[str, Path(max_length=64)],
    body: Promote,
    services: ServicesDep,
    _: PromptAdmin,
) -> ExperimentPublic:
    agent = services.agent
    exp = await run_in_threadpool(agent.experiments.get, experiment_id)
    if exp is None:
        raise HTTPException(404, "experiment not found")
    chosen = next((v for v in exp.variants if v.name == body.variant), None)
    if chosen is None:
        raise HTTPException(400, f"no variant {body.variant} in this experiment")
    await run_in_threadpool(agent.prompts.activate, exp.prompt_name, int(chosen.prompt_version))
    stopped = await run_in_threadpool(agent.experiments.stop, experiment_id, body.variant)
    return await _experiment_public(services, stopped or exp)


@router.get("/agent/backends", summary="Health of each LLM backend (breaker state, errors)")
async def backends(
    services: ServicesDep,
    _: Annotated[Principal, Security(authorize, scopes=[METRICS_READ])],
) -> list[dict[str, Any]]:
    if services.agent.control is None:
        return []
    return await services.agent.control.backends()
