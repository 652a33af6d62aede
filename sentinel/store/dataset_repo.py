"""Versions of the named datasets and the training runs that locked them.

Building a dataset reserves the next version number of its name (``reserve``: status
``building``), writes the files and ``manifest.json`` into the object store, then marks the
version ``ready`` with the manifest's sha256 (``finish``) or ``failed`` (``fail``). Version
numbers are never reused, and no method rewrites a ready version's files or row: building again
makes a new version. A training run records that it used a version with ``lock``; a locked
version cannot be deleted (:class:`DatasetLocked`), except by the retention period
(``expire``: ``storage.datasets_days``), which the caller applies only to versions no serving
model was trained on.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.store.annotation_tables import DATASET_LOCKS, DATASETS
from sentinel.store.clock import Repository
from sentinel.store.sql import as_utc

__all__ = [
    "DatasetLocked",
    "DatasetNotFound",
    "DatasetRepo",
    "DatasetVersion",
]


class DatasetNotFound(KeyError):  # noqa: N818 - a KeyError named for what is missing
    """No ready dataset version has this name and number."""


class DatasetLocked(Exception):  # noqa: N818 - the conflict it reports
    """The version was used by a training run: it is immutable."""


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One version of a named dataset.

    ``camera_ids`` are the cameras whose frames it holds; ``locked_by`` the runs that used it.
    """

    id: str
    name: str
    version: int
    status: str
    manifest_key: str
    manifest_sha256: str | None
    items: int
    boxes: int
    labels: tuple[str, ...]
    camera_ids: tuple[str, ...]
    created_by: str
    created_at: datetime
    locked_by: tuple[str, ...]

    @property
    def locked(self) -> bool:
        return bool(self.locked_by)


def _version(row: sa.RowMapping, locks: Sequence[str]) -> DatasetVersion:
    return DatasetVersion(
        id=str(row["id"]),
        name=str(row["name"]),
        version=int(row["version"]),
        status=str(row["status"]),
        manifest_key=str(row["manifest_key"]),
        manifest_sha256=row["manifest_sha256"],
        items=int(row["items"]),
        boxes=int(row["boxes"]),
        labels=tuple(json.loads(row["labels"])),
        camera_ids=tuple(json.loads(row["camera_ids"] or "[]")),
        created_by=str(row["created_by"]),
        created_at=as_utc(row["created_at"], "created_at"),
        locked_by=tuple(locks),
    )


class DatasetRepo(Repository):
    """The versions of the named datasets (rows; the files are in the object store)."""

    def _locks(
        self, conn: sa.Connection, pairs: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], builtins.list[str]]:
        if not pairs:
            return {}
        k = DATASET_LOCKS.c
        names = sorted({name for name, _ in pairs})
        rows = conn.execute(
            sa.select(k.name, k.version, k.run_id)
            .where(k.name.in_(names))
            .order_by(k.locked_at, k.run_id)
        )
        out: dict[tuple[str, int], builtins.list[str]] = {}
        for name, version, run_id in rows:
            out.setdefault((str(name), int(version)), []).append(str(run_id))
        return out

    def reserve(
        self,
        name: str,
        manifest_key_of: Callable[[str, int], str],
        *,
        labels: Sequence[str],
        created_by: str,
    ) -> DatasetVersion:
        """Take the next version number of ``name`` (status ``building``).

        Args:
            name: The dataset's name (a valid key segment; checked by the caller).
            manifest_key_of: ``(name, version) -> key`` of the manifest object.
            labels: Its class names.
            created_by: Who builds it.
        """
        now = self._now()
        with self._write() as conn:
            top = conn.execute(
                sa.select(sa.func.max(DATASETS.c.version)).where(DATASETS.c.name == name)
            ).scalar()
            version = int(top or 0) + 1
            values = {
                "id": str(uuid.uuid4()),
                "name": name,
                "version": version,
                "status": "building",
                "manifest_key": str(manifest_key_of(name, version)),
                "manifest_sha256": None,
                "items": 0,
                "boxes": 0,
                "labels": json.dumps(list(labels)),
                "camera_ids": "[]",
                "created_by": created_by[:64],
                "created_at": now,
            }
            conn.execute(sa.insert(DATASETS).values(**values))
        return _version(values, ())  # type: ignore[arg-type]

    def finish(
        self,
        name: str,
        version: int,
        *,
        manifest_sha256: str,
        items: int,
        boxes: int,
        camera_ids: Collection[str],
    ) -> DatasetVersion:
        """Mark a building version ready (its files are written).

        Raises:
            DatasetNotFound: no building version ``name`` / ``version``.
        """
        d = DATASETS.c
        with self._write() as conn:
            done = conn.execute(
                sa.update(DATASETS)
                .where(d.name == name, d.version == version, d.status == "building")
                .values(
                    status="ready",
                    manifest_sha256=manifest_sha256,
                    items=items,
                    boxes=boxes,
                    camera_ids=json.dumps(sorted(camera_ids)),
                )
            )
            if done.rowcount != 1:
                raise DatasetNotFound(f"{name} v{version} is not being built")
        found = self.get(name, version)
        assert found is not None
        return found

    def fail(self, name: str, version: int) -> None:
        """Mark a building version failed (its number is not reused)."""
        d = DATASETS.c
        with self._write() as conn:
            conn.execute(
                sa.update(DATASETS)
                .where(d.name == name, d.version == version, d.status == "building")
                .values(status="failed")
            )

    def get(self, name: str, version: int) -> DatasetVersion | None:
        """The version (any status), or None."""
        d = DATASETS.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(DATASETS).where(d.name == name, d.version == version))
                .mappings()
                .first()
            )
            if row is None:
                return None
            locks = self._locks(conn, [(name, version)])
        return _version(row, locks.get((name, version), []))

    def list(
        self, *, name: str | None = None, status: str | None = "ready"
    ) -> builtins.list[DatasetVersion]:
        """Versions by name, newest version first (``status``: only those; None: all)."""
        d = DATASETS.c
        query = sa.select(DATASETS)
        if name is not None:
            query = query.where(d.name == name)
        if status is not None:
            query = query.where(d.status == status)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(d.name, d.version.desc())).mappings().all()
            locks = self._locks(conn, {(str(r["name"]), int(r["version"])) for r in rows})
        return [_version(r, locks.get((str(r["name"]), int(r["version"])), [])) for r in rows]

    def latest(self, name: str) -> DatasetVersion | None:
        """The newest ready version of ``name``, or None."""
        found = self.list(name=name)
        return found[0] if found else None

    def _ready_row(self, conn: sa.Connection, name: str, version: int) -> sa.RowMapping:
        d = DATASETS.c
        query = sa.select(DATASETS).where(d.name == name, d.version == version)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # lock and delete of one version serialise here
        row = conn.execute(query).mappings().first()
        if row is None or row["status"] != "ready":
            raise DatasetNotFound(f"no ready dataset {name} v{version}")
        return row

    def lock(self, name: str, version: int, run_id: str) -> DatasetVersion:
        """Record that training run ``run_id`` used the version; idempotent per run.

        Raises:
            DatasetNotFound: no ready version ``name`` / ``version``.
        """
        if not run_id or len(run_id) > 128:
            raise ValueError(f"run_id must be 1..128 characters, but got {run_id!r}")
        now = self._now()
        k = DATASET_LOCKS.c
        with self._write() as conn:
            self._ready_row(conn, name, version)
            exists = conn.execute(
                sa.select(k.id).where(k.name == name, k.version == version, k.run_id == run_id)
            ).first()
            if exists is None:
                conn.execute(
                    sa.insert(DATASET_LOCKS).values(
                        id=str(uuid.uuid4()),
                        name=name,
                        version=version,
                        run_id=run_id,
                        locked_at=now,
                    )
                )
        found = self.get(name, version)
        assert found is not None
        return found

    def delete(self, name: str, version: int) -> DatasetVersion:
        """Mark an unlocked version deleted (the caller deletes its objects after).

        Raises:
            DatasetNotFound: no ready version ``name`` / ``version``.
            DatasetLocked: a training run used it.
        """
        d, k = DATASETS.c, DATASET_LOCKS.c
        with self._write() as conn:
            row = self._ready_row(conn, name, version)
            runs = [
                str(r[0])
                for r in conn.execute(
                    sa.select(k.run_id).where(k.name == name, k.version == version)
                )
            ]
            if runs:
                raise DatasetLocked(
                    f"{name} v{version} was used by training run(s) {', '.join(runs)}: "
                    "it is immutable"
                )
            # The row stays (status "deleted"), so the number is never given out again.
            conn.execute(
                sa.update(DATASETS)
                .where(d.name == name, d.version == version)
                .values(status="deleted")
            )
        return _version(row, ())

    def expire(self, name: str, version: int) -> DatasetVersion:
        """Mark a ready version deleted even if training runs used it: the retention period
        (``storage.datasets_days``) outranks reproducibility of old runs. The caller checks
        that no model it must keep was trained on it, then deletes its objects.

        Raises:
            DatasetNotFound: no ready version ``name`` / ``version``.
        """
        d = DATASETS.c
        with self._write() as conn:
            row = self._ready_row(conn, name, version)
            locks = self._locks(conn, [(name, version)]).get((name, version), [])
            conn.execute(
                sa.update(DATASETS)
                .where(d.name == name, d.version == version)
                .values(status="deleted")
            )
        return _version(row, locks)
