"""Building dataset versions into the object store, and reading them back verified.

``build_dataset`` turns the accepted annotations (optionally of some cameras) into a new version
of a named dataset: each frame's JPEG and YOLO label file, then ``manifest.json`` with their
sha256, under ``datasets/<name>/v<version>/`` (see :mod:`sentinel.train.datasets`). The
version's row is reserved first, so concurrent builds get distinct numbers, and marked ready
only once every file is written; a frame that is missing or unreadable is skipped and counted,
never fatal. ``read_dataset`` loads a version's manifest and checks every file against it.
``ready_version`` finds a ready version by its row (the one given, or the newest), and
``lock_dataset`` is how a training run takes one: found, locked with the run's id (so it can no
longer be deleted), then read back verified against the sha256 in its row.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.clock import Clock, utcnow
from sentinel.store.dataset_repo import DatasetNotFound, DatasetRepo, DatasetVersion
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.train.datasets import (
    DatasetError,
    DatasetManifest,
    ManifestItem,
    image_key,
    label_key,
    manifest_key,
    sha256_hex,
    verify_item,
    version_prefix,
    yolo_lines,
)

__all__ = [
    "BuiltDataset",
    "EmptyDatasetError",
    "build_dataset",
    "iter_items",
    "lock_dataset",
    "read_dataset",
    "ready_version",
]

log = logging.getLogger(__name__)


class EmptyDatasetError(DatasetError):
    """There is nothing to build: no accepted annotation (of the chosen cameras)."""


@dataclass(frozen=True)
class BuiltDataset:
    """A built version: its row, its manifest, and the frames left out (reason -> count)."""

    version: DatasetVersion
    manifest: DatasetManifest
    skipped: dict[str, int] = field(default_factory=dict)


def _frame_problem(data: bytes, width: int, height: int) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
            size = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "unreadable_frame"
    if size != (width, height):
        return "frame_size_mismatch"
    return None


def build_dataset(
    name: str,
    *,
    annotations: AnnotationRepo,
    datasets: DatasetRepo,
    objects: ObjectStore,
    labels: Sequence[str],
    created_by: str,
    cameras: Collection[str] | None = None,
    clock: Clock = utcnow,
) -> BuiltDataset:
    """Write a new version of ``name`` from the accepted annotations.

    Args:
        name: The dataset's name (letters, digits, ``.``, ``_``, ``-``).
        annotations: Where the accepted annotations are.
        datasets: The versions' rows.
        objects: The object store (frames are read from it, the dataset written to it).
        labels: The model's class names (a class index is a position here).
        created_by: Who builds it.
        cameras: Only these cameras' frames; None: every camera.
        clock: The manifest's ``created_at``.

    Raises:
        DatasetError: a bad name, or an annotation the labels cannot encode.
        EmptyDatasetError: nothing to build (no version is reserved then).
    """
    version_prefix(name, 1)  # checks the name before anything is written
    accepted = annotations.accepted(cameras=cameras)
    if not accepted:
        raise EmptyDatasetError("no accepted annotations to build a dataset from")
    reserved = datasets.reserve(name, manifest_key, labels=labels, created_by=created_by)
    version = reserved.version
    written: list[str] = []
    try:
        items: list[ManifestItem] = []
        skipped: dict[str, int] = {}
        for item, annotation in accepted:
            try:
                image = objects.get(item.image_key)
            except ObjectNotFound:
                problem: str | None = "missing_frame"
            else:
                problem = _frame_problem(image, item.width, item.height)
            if problem is not None:
                log.warning("dataset %s v%d: item %s skipped (%s)", name, version, item.id, problem)
                skipped[problem] = skipped.get(problem, 0) + 1
                continue
            label = yolo_lines(annotation.boxes, labels, item.width, item.height).encode()
            ikey, lkey = image_key(name, version, item.id), label_key(name, version, item.id)
            objects.put(ikey, image, "image/jpeg")
            written.append(ikey)
            objects.put(lkey, label, "text/plain")
            written.append(lkey)
            items.append(
                ManifestItem(
                    id=item.id,
                    image=f"images/{item.id}.jpg",
                    label=f"labels/{item.id}.txt",
                    image_sha256=sha256_hex(image),
                    label_sha256=sha256_hex(label),
                    camera_id=item.camera_id,
                    frame_ts=item.frame_ts,
                    frame_index=item.frame_index,
                    width=item.width,
                    height=item.height,
                    boxes=len(annotation.boxes),
                )
            )
        if not items:
            raise EmptyDatasetError(f"every accepted frame was skipped: {skipped}")
        manifest = DatasetManifest(
            name=name,
            version=version,
            created_at=clock(),
            labels=list(labels),
            items=items,
        )
        body = manifest.to_json()
        objects.put(reserved.manifest_key, body, "application/json")
        written.append(reserved.manifest_key)
        done = datasets.finish(
            name,
            version,
            manifest_sha256=sha256_hex(body),
            items=len(items),
            boxes=sum(i.boxes for i in items),
            camera_ids={i.camera_id for i in items},
        )
    except BaseException:
        datasets.fail(name, version)
        for key in written:  # a failed version leaves no files behind
            try:
                objects.delete(key)
            except Exception:
                log.exception("could not delete %s of failed dataset %s v%d", key, name, version)
        raise
    return BuiltDataset(done, manifest, skipped)


def read_dataset(objects: ObjectStore, version: DatasetVersion) -> DatasetManifest:
    """A ready version's manifest, checked against the sha256 recorded in its row.

    Raises:
        DatasetError: the manifest is missing, malformed or not the one recorded.
    """
    try:
        body = objects.get(version.manifest_key)
    except ObjectNotFound as exc:
        raise DatasetError(f"{version.manifest_key} is missing") from exc
    if version.manifest_sha256 is not None and sha256_hex(body) != version.manifest_sha256:
        raise DatasetError(f"{version.manifest_key}: sha256 does not match the recorded one")
    manifest = DatasetManifest.from_json(body)
    if manifest.name != version.name or manifest.version != version.version:
        raise DatasetError(
            f"{version.manifest_key} describes {manifest.name!r} v{manifest.version}, "
            f"not {version.name!r} v{version.version}"
        )
    return manifest.model_copy(update={"locked_by": list(version.locked_by)})


def ready_version(datasets: DatasetRepo, name: str, version: int | None = None) -> DatasetVersion:
    """The ready version ``version`` of dataset ``name`` (None: its newest ready version).

    Raises:
        DatasetError: there is no such ready version (the message lists the ready ones).
    """
    if version is None:
        found = datasets.latest(name)
    else:
        found = datasets.get(name, version)
        if found is not None and found.status != "ready":
            found = None
    if found is not None:
        return found
    known = sorted(v.version for v in datasets.list(name=name))
    if version is None or not known:
        raise DatasetError(f"dataset {name!r} has no ready version")
    raise DatasetError(f"dataset {name!r} has no ready version {version} (it has {known})")


def lock_dataset(
    datasets: DatasetRepo,
    objects: ObjectStore,
    name: str,
    version: int | None,
    run_id: str,
) -> DatasetManifest:
    """Take a dataset version for training run ``run_id``: find the ready version
    (``version``, or the newest), lock it with ``run_id`` (from then on it cannot be deleted,
    and no build rewrites it), and read its manifest checked against its row's sha256.

    Raises:
        DatasetError: no such ready version (or it was deleted before the lock), or its
            manifest is missing or not the one recorded.
    """
    found = ready_version(datasets, name, version)
    try:
        locked = datasets.lock(found.name, found.version, run_id)
    except DatasetNotFound as exc:  # deleted between the lookup and the lock
        raise DatasetError(f"dataset {name!r} v{found.version} is no longer ready") from exc
    return read_dataset(objects, locked)


def iter_items(
    objects: ObjectStore, manifest: DatasetManifest
) -> Iterator[tuple[ManifestItem, bytes, bytes]]:
    """Each item with its image and label bytes, verified against the manifest.

    Raises:
        DatasetError: a file is missing or differs from the manifest (naming it).
    """
    prefix = version_prefix(manifest.name, manifest.version)
    for item in manifest.items:
        try:
            image = objects.get(prefix + item.image)
            label = objects.get(prefix + item.label)
        except ObjectNotFound as exc:
            raise DatasetError(f"{exc.args[0] if exc.args else item.id} is missing") from exc
        verify_item(item, image, label)
        yield item, image, label
