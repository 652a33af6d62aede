"""Camera routes: add and remove cameras at run time, edit their scene (zones, lines, masks),
their status, their latest frame (with the scene drawn on request)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, Security, status
from starlette.concurrency import run_in_threadpool

from sentinel.api.deps import Services, ServicesDep
from sentinel.api.media import ranged_response
from sentinel.api.rules import camera_problems
from sentinel.api.schemas import CameraPublic
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.config import CAMERA_ID_PATTERN, SCENE_FIELDS, CameraConfig, CameraScene
from sentinel.domain.render import decode_jpeg, draw_scene, encode_jpeg
from sentinel.gateway.roles import CAMERAS_READ, CAMERAS_WRITE, Principal
from sentinel.store.camera_secrets import public_camera, seal_camera
from sentinel.store.rule_repo import RuleRepository

router = APIRouter(prefix="/cameras", tags=["cameras"])

CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]
Reader = Annotated[Principal, Security(authorize, scopes=[CAMERAS_READ])]
Writer = Annotated[Principal, Security(authorize, scopes=[CAMERAS_WRITE])]


async def _config(services: Services, camera_id: str) -> CameraConfig:
    raw = await run_in_threadpool(services.cameras.get, camera_id)
    if raw is None:
        raise HTTPException(404, "camera not found")
    return CameraConfig(**public_camera(raw))


@router.get("", response_model=list[CameraPublic], summary="All configured cameras")
async def list_cameras(services: ServicesDep, principal: Reader) -> list[CameraPublic]:
    rows = await run_in_threadpool(services.cameras.list)
    allowed = await allowed_cameras(principal, services)
    statuses = await services.control.statuses()
    return [
        CameraPublic.of(CameraConfig(**public_camera(cfg)), statuses.get(cid))
        for cid, cfg in rows
        if allowed is None or cid in allowed
    ]


@router.post(
    "",
    response_model=CameraPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Add a camera and start it",
    responses={409: {"description": "A camera with this id exists"}},
)
async def add_camera(
    camera: CameraConfig, services: ServicesDep, principal: Writer
) -> CameraPublic:
    """A camera-limited caller may add only a camera its limits hold (by id or group): 403
    otherwise, also when the id is taken by a camera hidden from it, and without naming it."""
    existing = await run_in_threadpool(services.cameras.get, camera.id)
    if principal.cameras is not None:
        groups = camera.groups if existing is None else existing.get("groups") or ()
        if not principal.can_see(camera.id, groups):
            raise HTTPException(403, "the camera would be outside your camera limits")
    if existing is not None:
        raise HTTPException(409, f"camera {camera.id} already exists")
    stored = seal_camera(camera.model_dump(mode="json"), services.security.secretbox)
    await run_in_threadpool(services.cameras.upsert, camera.id, stored)
    await services.control.started(camera)
    return CameraPublic.of(camera, await services.control.status(camera.id))


@router.get("/{camera_id}", response_model=CameraPublic, summary="A camera and its status")
async def get_camera(camera_id: CameraId, services: ServicesDep, principal: Reader) -> CameraPublic:
    await require_camera(principal, services, camera_id)
    cfg = await _config(services, camera_id)
    return CameraPublic.of(cfg, await services.control.status(camera_id))


@router.delete(
    "/{camera_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Stop and remove a camera (its events are kept)",
)
async def remove_camera(camera_id: CameraId, services: ServicesDep, principal: Writer) -> Response:
    await require_camera(principal, services, camera_id)
    deleted = await run_in_threadpool(services.cameras.delete, camera_id)
    if not deleted:
        raise HTTPException(404, "camera not found")
    await services.control.removed(camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{camera_id}/scene",
    response_model=CameraPublic,
    summary="Replace a camera's zones, lines and masks (it restarts with them)",
    responses={409: {"description": "A rule uses a zone or line the scene drops"}},
)
async def put_scene(
    camera_id: CameraId, scene: CameraScene, services: ServicesDep, principal: Writer
) -> CameraPublic:
    """The edited scene wins over the camera's config (also over the config file's, at each
    start) until ``DELETE …/scene``. 422 for bad geometry; 409 naming the rules that use a
    zone or line the new scene drops."""
    await require_camera(principal, services, camera_id)
    cfg = await apply_scene(services, camera_id, scene)
    return CameraPublic.of(cfg, await services.control.status(camera_id))


@router.delete(
    "/{camera_id}/scene",
    response_model=CameraPublic,
    summary="Drop the edited scene: back to the camera config's own zones, lines and masks",
    responses={409: {"description": "A rule uses a zone or line only the edited scene has"}},
)
async def reset_scene(
    camera_id: CameraId, services: ServicesDep, principal: Writer
) -> CameraPublic:
    await require_camera(principal, services, camera_id)
    cfg = await apply_scene(services, camera_id, None)
    return CameraPublic.of(cfg, await services.control.status(camera_id))


async def apply_scene(
    services: Services, camera_id: str, scene: CameraScene | None
) -> CameraConfig:
    """Stores ``scene`` as the camera's edited scene (None: back to its config's own) and
    restarts the camera with it; returns the camera's config as it now runs.

    Raises:
        HTTPException: 404 without the camera; 409 when a rule would name a zone or line that
            is gone (nothing is changed then).
    """
    edited = None if scene is None else scene.model_dump(mode="json")
    before = dict(await run_in_threadpool(services.cameras.list))
    if camera_id not in before:
        raise HTTPException(404, "camera not found")
    if edited is None:
        own = await run_in_threadpool(services.cameras.get_own, camera_id)
        if own is None:
            raise HTTPException(404, "camera not found")
        after = {**before[camera_id], **{k: own.get(k, []) for k in SCENE_FIELDS}}
    else:
        after = {**before[camera_id], **edited}
    cameras = {**before, camera_id: after}
    rules = await run_in_threadpool(RuleRepository(services.engine).list)
    broken = []
    for stored in (s for s in rules if s.rule.applies_to(camera_id)):
        already = set(camera_problems(stored.rule, before.items()))  # only what this breaks
        broken += [
            f"rule {stored.rule.name!r} ({stored.rule.id}): {problem}"
            for problem in camera_problems(stored.rule, cameras.items())
            if problem not in already
        ]
    if broken:
        raise HTTPException(409, "the scene would break rules: " + "; ".join(broken))
    if not await run_in_threadpool(services.cameras.set_scene, camera_id, edited):
        raise HTTPException(404, "camera not found")
    cfg = CameraConfig(**public_camera(after))
    await services.control.started(cfg)
    return cfg


@router.get(
    "/{camera_id}/latest.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No frame yet"}},
    summary="The newest analysed frame with tracked boxes drawn",
)
async def latest_frame(
    request: Request,
    camera_id: CameraId,
    services: ServicesDep,
    principal: Reader,
    overlay: Annotated[
        Literal["zones"] | None,
        Query(description="`zones`: also draw the camera's zones, lines and masks."),
    ] = None,
) -> Response:
    await require_camera(principal, services, camera_id)
    cfg = await _config(services, camera_id)
    data = await services.control.latest_jpeg(camera_id)
    if data is None:
        raise HTTPException(404, "the camera has no frame yet")
    if overlay == "zones":
        data = await run_in_threadpool(_with_scene, data, cfg)
    return ranged_response(data, "image/jpeg", request, {"Cache-Control": "no-store"})


def _with_scene(jpeg: bytes, cfg: CameraConfig) -> bytes:
    """The frame ``jpeg`` with ``cfg``'s zones, lines and masks drawn on it."""
    try:
        rgb = decode_jpeg(jpeg)
    except ValueError as exc:
        raise HTTPException(502, "the camera's latest frame could not be decoded") from exc
    scene = cfg.pipeline_config()
    drawn = draw_scene(
        rgb,
        zones=scene.zones,
        lines=scene.lines,
        motion_masks=scene.motion.masks,
        object_masks=scene.object_masks,
    )
    return encode_jpeg(drawn)
