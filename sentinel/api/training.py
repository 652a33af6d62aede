"""Training runs: start a fine-tuning run of a dataset version and follow its progress.

``POST /training/runs`` (``models:admin``) checks the dataset version is ready (the lookup the
run itself makes: ``sentinel.train.dataset_store.ready_version``), records a
``queued`` run and hands it to the training control (in the platform a Ray task that runs
Ray Data curation, Ray Train and the gate: ``sentinel.actors.training``); it answers 202 with the
run. ``GET /training/runs`` and ``GET /training/runs/{id}`` (``models:read``) show each run's
status and progress (epoch of epochs, optimiser step, loss, worker restarts and where it
resumed), its MLflow run id, the challenger's registry version and the gate report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Security, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep, TrainingServices
from sentinel.api.security import authorize
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import MODELS_ADMIN, MODELS_READ, Principal
from sentinel.store.training_repo import TrainingRun
from sentinel.train.dataset_store import ready_version
from sentinel.train.datasets import DATASET_NAME_PATTERN, DatasetError

router = APIRouter(prefix="/training", tags=["training"])

RunId = Annotated[str, PathParam(max_length=64)]
Reader = Annotated[Principal, Security(authorize, scopes=[MODELS_READ])]
Admin = Annotated[Principal, Security(authorize, scopes=[MODELS_ADMIN])]


class TrainingRunCreate(StrictModel):
    """A run to start: a dataset version and the loop's knobs (defaults from settings)."""

    dataset: str = Field(pattern=DATASET_NAME_PATTERN, description="The dataset's name.")
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Its version; null: the newest."
    )
    epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=256)
    input_size: int | None = Field(None, ge=64, le=2048, multiple_of=32)
    lr: float | None = Field(None, gt=0, le=1, description="AdamW learning rate.")


class Progress(BaseModel):
    epoch: int = Field(description="Epochs done.")
    epochs: int
    step: int = Field(description="Optimiser steps done (kept across a resume).")
    total_steps: int | None
    fraction: float = Field(description="Share of the steps done, 0..1.")
    checkpoint_epoch: int | None = Field(description="The epoch of the last registered checkpoint.")
    loss: float | None = Field(description="The latest training loss per image.")


class TrainingRunPublic(BaseModel):
    id: str
    dataset: str
    dataset_version: int | None
    status: str = Field(description="queued, curating, training, evaluating, succeeded, failed")
    progress: Progress
    attempts: int = Field(description="Training worker starts (more than 1: it was restarted).")
    resumed_epoch: int | None = Field(
        description="The checkpoint's epoch the last restart resumed from."
    )
    resumed_step: int | None
    mlflow_run_id: str | None
    challenger_version: int | None = Field(description="The registered model version.")
    gate_passed: bool | None
    gate: dict[str, Any] | None = Field(description="The gate report: per split, and why.")
    counts: dict[str, Any] | None = Field(description="Curation counts (unreadable, ...).")
    params: dict[str, Any]
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: TrainingRun) -> TrainingRunPublic:
        total = run.total_steps
        fraction = (
            1.0 if run.status == "succeeded" else (min(1.0, run.step / total) if total else 0.0)
        )
        return cls(
            id=run.id,
            dataset=run.dataset,
            dataset_version=run.dataset_version,
            status=run.status,
            progress=Progress(
                epoch=run.epoch,
                epochs=run.epochs,
                step=run.step,
                total_steps=total,
                fraction=fraction,
                checkpoint_epoch=run.checkpoint_epoch,
                loss=run.loss,
            ),
            attempts=run.attempts,
            resumed_epoch=run.resumed_epoch,
            resumed_step=run.resumed_step,
            mlflow_run_id=run.mlflow_run_id,
            challenger_version=run.challenger_version,
            gate_passed=run.gate_passed,
            gate=run.gate,
            counts=run.counts,
            params=run.params,
            error=run.error,
            created_by=run.created_by,
            created_at=run.created_at,
            updated_at=run.updated_at,
            finished_at=run.finished_at,
        )


def _training(services: Services) -> TrainingServices:
    training = services.training
    if training is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "training is not configured")
    return training


@router.post(
    "/runs",
    response_model=TrainingRunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a training run of a dataset version",
    responses={
        422: {"description": "No such ready dataset version, or a bad parameter"},
        503: {"description": "Training or the datasets are not configured"},
    },
)
async def start_run(
    body: TrainingRunCreate, services: ServicesDep, principal: Admin
) -> TrainingRunPublic:
    training = _training(services)
    if services.annotation is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "datasets are not configured")
    try:
        await run_in_threadpool(
            ready_version, services.annotation.datasets, body.dataset, body.version
        )
    except DatasetError as exc:
        raise HTTPException(422, str(exc)) from exc
    d = training.defaults
    params = {
        "batch_size": body.batch_size or d.batch_size,
        "input_size": body.input_size or d.input_size,
        "lr": body.lr or d.lr,
    }
    run = await run_in_threadpool(
        training.runs.create,
        body.dataset,
        epochs=body.epochs or d.epochs,
        params=params,
        created_by=principal.subject,
        dataset_version=body.version,
    )
    await training.control.start(run.id)
    return TrainingRunPublic.of(run)


@router.get("/runs", response_model=list[TrainingRunPublic], summary="Training runs, newest first")
async def list_runs(
    services: ServicesDep,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[TrainingRunPublic]:
    runs = await run_in_threadpool(_training(services).runs.list, limit=limit, offset=offset)
    return [TrainingRunPublic.of(r) for r in runs]


@router.get(
    "/runs/{run_id}",
    response_model=TrainingRunPublic,
    summary="One training run with its progress",
    responses={404: {"description": "No such run"}},
)
async def get_run(run_id: RunId, services: ServicesDep, _: Reader) -> TrainingRunPublic:
    run = await run_in_threadpool(_training(services).runs.get, run_id)
    if run is None:
        raise HTTPException(404, "training run not found")
    return TrainingRunPublic.of(run)
