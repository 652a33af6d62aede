"""Erasing a data subject from the learning loop's outputs (issue 16): dataset versions and
MLflow artifacts.

A dataset version is never rewritten, and one used by a training run is immutable
(``DatasetRepo.lock``). Erasure still has to remove the subject, so :class:`DatasetEraser`
*replaces* the version: it writes a new version of the same name with every item but the
subject's (the same files, checked against the old manifest's sha256), then deletes every
object of the old version and marks its row ``erased``. The new version's ``created_by`` is
``erasure of v<old>``: a run cut short between the two reuses it instead of writing
another. The old row and its locks stay, so which runs trained on it is still on record; the
files are gone. A version left with no item gets no successor.

:class:`MlflowArtifacts` deletes the artifact files of a run that trained on an erased
version (the model weights learnt from the subject's frames, the logged samples): the run's
params and metrics stay; the run is tagged ``sentinel.erased``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sentinel.store.dataset_repo import DatasetRepo
from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.subject_repo import SubjectData
from sentinel.train.dataset_store import read_dataset
from sentinel.train.datasets import (
    DatasetError,
    DatasetManifest,
    image_key,
    label_key,
    manifest_key,
    sha256_hex,
    version_prefix,
)

__all__ = ["DatasetEraser", "ErasedVersion", "MlflowArtifacts", "successor_mark"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ErasedVersion:
    """What erasing items from one version did."""

    removed_items: int
    deleted_objects: int
    replaced_by: int | None  # the new version's number; None: nothing left to keep
    already: bool = False  # the version was erased before (a resumed request)


def successor_mark(version: int) -> str:
    """``created_by`` of the version that replaces ``version`` after an erasure."""
    return f"erasure of v{version}"


class DatasetEraser:
    """Finds and erases a subject's items in dataset versions (see the module's doc)."""

    def __init__(self, objects: ObjectStore, datasets: DatasetRepo, data: SubjectData) -> None:
        self.objects = objects
        self.datasets = datasets
        self.data = data

    def items_of(self, name: str, version: int) -> list[str]:
        """The item ids of a ready version (its manifest, verified)."""
        found = self.datasets.get(name, version)
        if found is None or found.status != "ready":
            return []
        return [item.id for item in read_dataset(self.objects, found).items]

    def erase(
        self, name: str, version: int, item_ids: Collection[str], erased_by: str
    ) -> ErasedVersion:
        """Replaces ``name`` v``version`` by a new version without ``item_ids``.

        Raises:
            DatasetError: the version's manifest or a kept file does not match its sha256.
        """
        found = self.datasets.get(name, version)
        if found is None or found.status != "ready":
            return ErasedVersion(0, 0, None, already=True)
        manifest = read_dataset(self.objects, found)
        leaving = set(item_ids)
        kept = [i for i in manifest.items if i.id not in leaving]
        replaced_by = None
        if kept:  # a run cut short after writing the successor reuses it
            replaced_by = self._successor(name, version) or self._replace(manifest, kept)
        deleted = 0
        for item in manifest.items:
            for key in (image_key(name, version, item.id), label_key(name, version, item.id)):
                deleted += self._delete(key)
        deleted += self._delete(manifest_key(name, version))
        for key, _ in list(self.objects.iter_keys(version_prefix(name, version))):
            deleted += self._delete(key)  # anything else under the version's folder
        self.data.mark_dataset_erased(name, version)
        log.info(
            "dataset %s v%d erased for %s (successor: %s)", name, version, erased_by, replaced_by
        )
        removed = len(manifest.items) - len(kept)
        return ErasedVersion(removed, deleted, replaced_by)

    def _delete(self, key: str) -> int:
        try:
            if not self.objects.exists(key):
                return 0
            self.objects.delete(key)
        except ObjectNotFound:
            return 0
        return 1

    def _successor(self, name: str, version: int) -> int | None:
        mark = successor_mark(version)
        for found in self.datasets.list(name=name):
            if found.created_by == mark and found.version > version:
                return found.version
        return None

    def _replace(self, old: DatasetManifest, kept: list[Any]) -> int:
        reserved = self.datasets.reserve(
            old.name, manifest_key, labels=old.labels, created_by=successor_mark(old.version)
        )
        version = reserved.version
        try:
            items = []
            for item in kept:
                image = self.objects.get(image_key(old.name, old.version, item.id))
                label = self.objects.get(label_key(old.name, old.version, item.id))
                if sha256_hex(image) != item.image_sha256 or sha256_hex(label) != item.label_sha256:
                    raise DatasetError(f"{old.name} v{old.version}: {item.id} does not match")
                self.objects.put(image_key(old.name, version, item.id), image, "image/jpeg")
                self.objects.put(label_key(old.name, version, item.id), label, "text/plain")
                items.append(item)
            manifest = DatasetManifest(
                name=old.name,
                version=version,
                created_at=old.created_at,
                labels=old.labels,
                items=items,
            )
            body = manifest.to_json()
            self.objects.put(reserved.manifest_key, body, "application/json")
            self.datasets.finish(
                old.name,
                version,
                manifest_sha256=sha256_hex(body),
                items=len(items),
                boxes=sum(i.boxes for i in items),
                camera_ids={i.camera_id for i in items},
            )
        except BaseException:
            self.datasets.fail(old.name, version)
            raise
        return version


class MlflowArtifacts:
    """Deletes the artifact files of MLflow runs (a local or server artifact store that
    supports deletion: the embedded store's local folder does)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient  # seconds to import: only here

        return MlflowClient(tracking_uri=self.uri)

    def _walk(self, client: Any, run_id: str, path: str | None = None) -> list[str]:
        out: list[str] = []
        for info in client.list_artifacts(run_id, path):
            if info.is_dir:
                out.extend(self._walk(client, run_id, info.path))
            else:
                out.append(str(info.path))
        return out

    def paths(self, run_id: str) -> list[str]:
        """The run's artifact files (paths relative to its artifact root)."""
        return self._walk(self._client(), run_id)

    def delete(self, run_id: str) -> list[str]:
        """Deletes every artifact file of the run and tags it ``sentinel.erased``; returns
        the paths deleted (empty when there were none: a resumed request)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        client = self._client()
        paths = self._walk(client, run_id)
        if paths:
            run = client.get_run(run_id)
            repo = get_artifact_repository(run.info.artifact_uri)
            repo.delete_artifacts()  # type: ignore[no-untyped-call]
        client.set_tag(run_id, "sentinel.erased", "subject erasure: artifacts deleted")
        return paths
