"""Model routes: the registry's versions with live canary figures; canary, promote, roll back.

Reading needs ``models:read``; changing what is served needs ``models:admin`` and covers every
camera (a promotion or rollback reaches all of them), so a camera-limited principal gets 403
there. A version that failed its gate (tag ``gate`` other than ``passed``) or whose ONNX file
fails its sha256 is never served: 409 with the reason. Every step is audited by the API's
audit middleware (who, which version, the outcome); the controller audits what it does itself
(the guard's trips and its automatic rollbacks).
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, HTTPException, Path, Request, Security
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import ServicesDep
from sentinel.api.security import allowed_cameras, authorize, authorize_every_camera
from sentinel.gateway.roles import MODELS_ADMIN, MODELS_READ, Principal
from sentinel.train.serving import ModelConflictError, ModelNotFoundError, ModelService

router = APIRouter(tags=["models"])
Reader = Annotated[Principal, Security(authorize, scopes=[MODELS_READ])]
Admin = Annotated[Principal, Security(authorize_every_camera, scopes=[MODELS_ADMIN])]
Version = Annotated[int, Path(ge=1, le=1_000_000, description="The registry version.")]


class ModelsUnavailableError(RuntimeError):
    """The model controller is not running (HTTP 503)."""


class ModelControl(Protocol):
    """What the routes drive: the controller actor in the platform, a service in tests."""

    async def overview(self) -> dict[str, Any]: ...

    async def canary(
        self, version: int, cameras: list[str], share: float, actor: str
    ) -> dict[str, Any]: ...

    async def promote(self, version: int, actor: str) -> dict[str, Any]: ...

    async def rollback(self, version: int, actor: str) -> dict[str, Any]: ...


class LocalModelControl:
    """A :class:`ModelService` in this process (tests, single-process tools)."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def overview(self) -> dict[str, Any]:
        return await run_in_threadpool(self.service.overview)

    async def canary(
        self, version: int, cameras: list[str], share: float, actor: str
    ) -> dict[str, Any]:
        return await run_in_threadpool(
            lambda: self.service.canary(version, cameras=cameras, share=share, actor=actor)
        )

    async def promote(self, version: int, actor: str) -> dict[str, Any]:
        return await run_in_threadpool(lambda: self.service.promote(version, actor=actor))

    async def rollback(self, version: int, actor: str) -> dict[str, Any]:
        return await run_in_threadpool(
            lambda: self.service.rollback(version, actor=actor, reason="requested")
        )


class Figures(BaseModel):
    version: int
    frames: int
    detections: int
    detections_per_frame: float | None
    mean_latency_ms: float | None
    judged: int = Field(description="Operators' verdicts on alerts of this model's events.")
    false_positives: int
    fp_rate: float | None


class VersionPublic(BaseModel):
    version: int
    sha256: str
    aliases: list[str] = Field(description="champion, challenger")
    metrics: dict[str, float]
    tags: dict[str, str] = Field(description="Gate report and other tags (`gate`: passed…).")
    run_id: str | None
    created_at: str
    labels: list[str]
    input_size: int
    figures: Figures | None = Field(description="Live figures since the canary started.")


class CanaryPublic(BaseModel):
    version: int
    cameras: list[str]
    share: float
    started_at: str | None
    promoting: bool


class ModelsPublic(BaseModel):
    versions: list[VersionPublic]
    champion: int
    previous: list[int] = Field(description="Earlier champions, oldest first (rollback order).")
    canary: CanaryPublic | None
    guard: dict[str, Any] = Field(description="The guard's thresholds and its last check.")


class CanaryRequest(BaseModel):
    """Who the challenger serves: whole cameras, and/or a share of every other camera's frames
    (chosen by a hash of camera and frame, so the same frames go to it)."""

    model_config = {"extra": "forbid"}

    cameras: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=1000
    )
    share: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self) -> CanaryRequest:
        if not self.cameras and self.share == 0.0:
            raise ValueError("name cameras, or a share of frames above 0, for the challenger")
        return self


def _control(services: ServicesDep) -> ModelControl:
    if services.models is None:
        raise HTTPException(503, "model serving is off (train.serve_registry: false)")
    control: ModelControl = services.models
    return control


async def _run(call: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await call
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ModelConflictError as exc:
        raise HTTPException(409, str(exc)) from exc
    except ModelsUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return result


async def _public(
    result: dict[str, Any], principal: Principal, services: ServicesDep
) -> ModelsPublic:
    allowed = await allowed_cameras(principal, services)
    canary = result.get("canary")
    if canary is not None and allowed is not None:  # camera limits: name only its cameras
        result = {
            **result,
            "canary": {**canary, "cameras": [c for c in canary["cameras"] if c in allowed]},
        }
    return ModelsPublic(**result)


@router.get("/models", response_model=ModelsPublic, summary="Model versions and live figures")
async def list_models(principal: Reader, services: ServicesDep) -> ModelsPublic:
    """The registry's versions (aliases, metrics, gate tags), the serving state and the live
    figures per model: operators' false-positive rate, detections per frame, latency."""
    return await _public(await _run(_control(services).overview()), principal, services)


@router.post(
    "/models/{version}/canary",
    response_model=ModelsPublic,
    summary="Serve a version to some cameras or a share of frames",
    responses={
        404: {"description": "No such version or camera"},
        409: {"description": "Not deployable"},
    },
)
async def canary(
    version: Version,
    body: CanaryRequest,
    principal: Admin,
    services: ServicesDep,
    request: Request,
) -> ModelsPublic:
    """Deploys the challenger beside the champion and routes the chosen cameras (or share of
    frames) to it; 409 for a version that failed its gate or its digest."""
    known = {camera_id for camera_id, _ in await run_in_threadpool(services.cameras.list)}
    unknown = sorted(set(body.cameras) - known)
    if unknown:
        raise HTTPException(404, f"unknown camera(s): {', '.join(unknown)}")
    request.state.audit_detail = {"cameras": body.cameras, "share": body.share}
    result = await _run(
        _control(services).canary(version, body.cameras, body.share, principal.subject)
    )
    return await _public(result, principal, services)


@router.post(
    "/models/{version}/promote",
    response_model=ModelsPublic,
    summary="Make a version the champion",
    responses={404: {"description": "No such version"}, 409: {"description": "Not deployable"}},
)
async def promote(version: Version, principal: Admin, services: ServicesDep) -> ModelsPublic:
    """Serves the version on every camera as the new champion, without a frame waiting for the
    model to load; 409 for a version that failed its gate or its digest."""
    result = await _run(_control(services).promote(version, principal.subject))
    return await _public(result, principal, services)


@router.post(
    "/models/{version}/rollback",
    response_model=ModelsPublic,
    summary="Roll a canary or the champion back",
    responses={409: {"description": "Nothing to roll back"}},
)
async def rollback(version: Version, principal: Admin, services: ServicesDep) -> ModelsPublic:
    """Returns every camera to the last champion: a canary of this version stops serving at
    once (its deployment is removed after); a champion of this version gives way to the one
    before it."""
    result = await _run(_control(services).rollback(version, principal.subject))
    return await _public(result, principal, services)
