"""Finding and loading a dataset version's manifest in the object store."""

from __future__ import annotations

import re

from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.train.datasets import DatasetError, DatasetManifest, manifest_key, version_prefix

_VERSION = re.compile(r"^datasets/[^/]+/v(\d+)/manifest\.json$")


def versions(store: ObjectStore, name: str) -> list[int]:
    """The versions of dataset ``name`` that have a manifest, ascending."""
    prefix = version_prefix(name, 1).rsplit("/v1/", 1)[0] + "/"
    found = []
    for key, _ in store.iter_keys(prefix):
        match = _VERSION.match(key)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def load_manifest(store: ObjectStore, name: str, version: int | None = None) -> DatasetManifest:
    """The manifest of ``name`` at ``version`` (None: the newest).

    Raises:
        DatasetError: There is no such dataset or version, or the manifest is invalid.
    """
    if version is None:
        known = versions(store, name)
        if not known:
            raise DatasetError(f"dataset {name!r} has no version in the object store")
        version = known[-1]
    try:
        data = store.get(manifest_key(name, version))
    except ObjectNotFound:
        raise DatasetError(f"dataset {name!r} has no version {version}") from None
    manifest = DatasetManifest.from_json(data)
    if manifest.name != name or manifest.version != version:
        raise DatasetError(
            f"{manifest_key(name, version)} describes {manifest.name!r} v{manifest.version}"
        )
    return manifest


def object_key(manifest: DatasetManifest, relative: str) -> str:
    """The object key of a file named relative to the version folder (an item's image/label)."""
    return version_prefix(manifest.name, manifest.version) + relative
