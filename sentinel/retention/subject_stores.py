"""The stores a data-subject request reaches (``SubjectStores``), as protocols where they
live in another feature package (the search index, datasets, MLflow), and the helpers the
request's steps share."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from sentinel.store.audit_repo import AuditRepository
from sentinel.store.objects import ObjectNotFound, ObjectStore

__all__ = [
    "DatasetItems",
    "RunArtifacts",
    "SearchEntries",
    "SubjectStores",
    "SubjectTooLargeError",
    "archive_key_of",
    "delete_object",
]


class SubjectTooLargeError(ValueError):
    """The subject touches more events than one request may (``max_events``)."""


class SearchEntries(Protocol):
    """The search index as a request uses it (``VectorIndex``, the indexer's proxy)."""

    def get(self, item_id: str) -> Any | None: ...

    def delete(self, ids: Collection[str]) -> None: ...

    def present(self, ids: Collection[str]) -> list[str]: ...


class DatasetItems(Protocol):
    """Dataset versions as a request uses them (``sentinel.train.erasure.DatasetEraser``)."""

    def items_of(self, name: str, version: int) -> list[str]: ...

    def erase(self, name: str, version: int, item_ids: Collection[str], erased_by: str) -> Any: ...


class RunArtifacts(Protocol):
    """MLflow artifacts (``sentinel.train.erasure.MlflowArtifacts``)."""

    def paths(self, run_id: str) -> list[str]: ...

    def delete(self, run_id: str) -> list[str]: ...


@dataclass
class SubjectStores:
    """Every store a request reads or erases; None: that store is not configured.

    Attributes:
        max_events: The most events one subject may resolve to (a bigger subject is refused:
            split it by time range).
        max_archive_bytes: The most bytes an access archive may hold.
    """

    engine: Engine
    objects: ObjectStore
    archive: ObjectStore | None = None
    index: SearchEntries | None = None
    appearance: SearchEntries | None = None
    datasets: DatasetItems | None = None
    artifacts: RunArtifacts | None = None
    audit: AuditRepository | None = None
    max_events: int = 10_000
    max_archive_bytes: int = 1 << 30


def archive_key_of(request_id: str) -> str:
    return f"privacy/{request_id}/subject.zip"


def delete_object(store: ObjectStore, key: str) -> int:
    """Deletes ``key``; 1 if it was there."""
    try:
        if not store.exists(key):
            return 0
        store.delete(key)
    except ObjectNotFound:
        return 0
    return 1
