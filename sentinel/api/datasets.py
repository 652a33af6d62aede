"""Datasets: versions of accepted annotations in the object store, for training.

``POST /datasets`` builds a new version of a named dataset from the accepted annotations
(optionally of some cameras): frames, YOLO labels and ``manifest.json`` with their sha256 under
``datasets/<name>/v<version>/``. Versions are never rewritten; one a training run used is locked
and cannot be deleted (409). Building and deleting need ``models:admin``, reading
``models:read``. Camera limits apply: a version holding frames of a camera the caller may not
see is a 404 to them, and a camera-limited caller builds from their cameras only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security, status
from fastapi import Path as PathParam
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.annotation import annotation_services
from sentinel.api.deps import Services, ServicesDep
from sentinel.api.records import RecordView
from sentinel.api.security import allowed_cameras, authorize, require_camera
from sentinel.config import CAMERA_ID_PATTERN
from sentinel.domain.strict import StrictModel
from sentinel.gateway.roles import MODELS_ADMIN, MODELS_READ, Principal
from sentinel.store.dataset_repo import DatasetLocked, DatasetNotFound, DatasetVersion
from sentinel.store.objects import ObjectStore
from sentinel.train.dataset_store import EmptyDatasetError, build_dataset, read_dataset
from sentinel.train.datasets import DATASET_NAME_PATTERN, DatasetError, version_prefix

router = APIRouter(prefix="/datasets", tags=["datasets"])

Name = Annotated[str, PathParam(pattern=DATASET_NAME_PATTERN)]
Version = Annotated[int, PathParam(ge=1, le=1_000_000)]
Reader = Annotated[Principal, Security(authorize, scopes=[MODELS_READ])]
Admin = Annotated[Principal, Security(authorize, scopes=[MODELS_ADMIN])]


class DatasetCreate(StrictModel):
    """Build the next version of ``name``; ``camera_ids``: only their frames."""

    name: str = Field(pattern=DATASET_NAME_PATTERN)
    camera_ids: list[Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=256
    )


class DatasetPublic(RecordView):
    """One version: its counts, labels, cameras, manifest and the runs that locked it."""

    record = DatasetVersion
    hidden = frozenset({"id"})
    derived = frozenset({"locked"})

    name: str
    version: int
    status: str
    manifest_key: str
    manifest_sha256: str | None
    items: int
    boxes: int
    labels: list[str]
    camera_ids: list[str]
    created_by: str
    created_at: datetime
    locked_by: list[str]
    locked: bool


class DatasetBuilt(DatasetPublic):
    """A version just built, and the frames left out (reason -> count)."""

    derived = frozenset({"locked", "skipped"})

    skipped: dict[str, int]


class DatasetDetail(DatasetPublic):
    """A version with its manifest (``locked_by`` from the store's record)."""

    derived = frozenset({"locked", "manifest"})

    manifest: dict[str, Any]


def _public(version: DatasetVersion) -> DatasetPublic:
    return DatasetPublic.of_record(version, locked=version.locked)


def _visible(version: DatasetVersion, allowed: set[str] | None) -> bool:
    return allowed is None or set(version.camera_ids) <= allowed


async def _visible_version(
    name: str, number: int, services: Services, principal: Principal
) -> DatasetVersion:
    ann = annotation_services(services)
    found = await run_in_threadpool(ann.datasets.get, name, number)
    allowed = await allowed_cameras(principal, services)
    if found is None or found.status != "ready" or not _visible(found, allowed):
        raise HTTPException(404, "dataset version not found")
    return found


@router.post(
    "",
    response_model=DatasetBuilt,
    status_code=status.HTTP_201_CREATED,
    summary="Build a new version of a dataset from the accepted annotations",
    responses={
        404: {"description": "A camera is not visible, or annotation is not enabled"},
        409: {"description": "Nothing to build: no accepted annotation"},
    },
)
async def create_dataset(
    body: DatasetCreate, request: Request, services: ServicesDep, principal: Admin
) -> DatasetBuilt:
    """Writes every accepted frame and its YOLO labels, then the manifest with their sha256;
    the version number is the next of `name`. Missing or unreadable frames are skipped and
    counted in `skipped`."""
    ann = annotation_services(services)
    cameras: set[str] | None = None
    if body.camera_ids is not None:
        for camera in body.camera_ids:
            await require_camera(principal, services, camera)
        cameras = set(body.camera_ids)
    else:
        cameras = await allowed_cameras(principal, services)
    try:
        built = await run_in_threadpool(
            lambda: build_dataset(
                body.name,
                annotations=ann.repo,
                datasets=ann.datasets,
                objects=services.objects,
                labels=ann.labels,
                created_by=principal.subject,
                cameras=cameras,
            )
        )
    except EmptyDatasetError as exc:
        raise HTTPException(409, str(exc)) from exc
    except DatasetError as exc:
        raise HTTPException(422, str(exc)) from exc
    version = built.version
    request.state.audit_detail = {
        "dataset": version.name,
        "version": version.version,
        "items": version.items,
        "manifest_sha256": version.manifest_sha256,
    }
    return DatasetBuilt.of_record(version, locked=version.locked, skipped=built.skipped)


@router.get("", response_model=list[DatasetPublic], summary="Dataset versions")
async def list_datasets(
    services: ServicesDep,
    principal: Reader,
    name: Annotated[str | None, Query(pattern=DATASET_NAME_PATTERN)] = None,
) -> list[DatasetPublic]:
    """Ready versions by name, newest first; only those of cameras the caller may see."""
    ann = annotation_services(services)
    versions = await run_in_threadpool(lambda: ann.datasets.list(name=name))
    allowed = await allowed_cameras(principal, services)
    return [_public(v) for v in versions if _visible(v, allowed)]


@router.get(
    "/{name}/{version}",
    response_model=DatasetDetail,
    summary="A dataset version and its manifest",
    responses={404: {"description": "Not found or not visible"}},
)
async def get_dataset(
    name: Name, version: Version, services: ServicesDep, principal: Reader
) -> DatasetDetail:
    found = await _visible_version(name, version, services, principal)
    try:
        manifest = await run_in_threadpool(read_dataset, services.objects, found)
    except DatasetError as exc:
        raise HTTPException(500, f"the dataset's manifest is damaged: {exc}") from exc
    return DatasetDetail.of_record(
        found, locked=found.locked, manifest=manifest.model_dump(mode="json")
    )


def _delete_files(objects: ObjectStore, name: str, version: int) -> int:
    keys = [key for key, _ in objects.iter_keys(version_prefix(name, version))]
    for key in keys:
        objects.delete(key)
    return len(keys)


@router.delete(
    "/{name}/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a dataset version no training run used",
    responses={
        404: {"description": "Not found or not visible"},
        409: {"description": "A training run used it: it is immutable"},
    },
)
async def delete_dataset(
    name: Name, version: Version, request: Request, services: ServicesDep, principal: Admin
) -> Response:
    ann = annotation_services(services)
    await _visible_version(name, version, services, principal)
    try:
        await run_in_threadpool(ann.datasets.delete, name, version)
    except DatasetNotFound as exc:
        raise HTTPException(404, "dataset version not found") from exc
    except DatasetLocked as exc:
        raise HTTPException(409, str(exc)) from exc
    files = await run_in_threadpool(_delete_files, services.objects, name, version)
    request.state.audit_detail = {"dataset": name, "version": version, "files": files}
    return Response(status_code=status.HTTP_204_NO_CONTENT)
