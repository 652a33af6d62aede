"""The index of the exports: kept clips of a camera's recording, by camera and creation time.

``ExportRepository`` keeps one row per exported clip; the clip's bytes are an object under
``export_key`` (``exports/<camera_id>/<id>.mp4``), written by the caller before ``add``. The
retention sweep only works on ``recordings/``, so an export lives until ``delete``.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.export_tables import EXPORT_STATUSES, EXPORTS
from sentinel.store.sql import as_utc, check_choice, utc_range

__all__ = ["EXPORT_STATUSES", "ExportRecord", "ExportRepository", "export_key", "new_export_id"]

_MAX_LIMIT = 1000
_MAX_NAME = 200
_MAX_ERROR = 2000
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def new_export_id() -> str:
    """A fresh export id (a uuid4 string)."""
    return str(uuid.uuid4())


def export_key(camera_id: str, export_id: str) -> str:
    """The object key of an export: ``exports/<camera_id>/<export_id>.mp4``.

    Raises:
        ValueError: If either id is not a valid single key segment.
    """
    for name, value in (("camera_id", camera_id), ("export_id", export_id)):
        if value in (".", "..") or not _SEGMENT.fullmatch(value):
            raise ValueError(f"{name} must match [A-Za-z0-9._-]+, but got {value!r}")
    return f"exports/{camera_id}/{export_id}.mp4"


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """A stored export: ``[start_at, end_at]`` of ``camera_id`` in the object ``object_key``."""

    id: str
    camera_id: str
    name: str
    start_at: datetime
    end_at: datetime
    object_key: str
    size: int
    created_by: str
    created_at: datetime
    status: str
    error: str | None


def _to_record(row: sa.RowMapping) -> ExportRecord:
    return ExportRecord(
        id=row["id"],
        camera_id=row["camera_id"],
        name=row["name"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        object_key=row["object_key"],
        size=int(row["size"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        status=row["status"],
        error=row["error"],
    )


class ExportRepository(Repository):
    """Reads and writes the index of exported clips.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time (for ``created_at``); injectable for tests.
    """

    def add(
        self,
        export_id: str,
        camera_id: str,
        name: str,
        start: datetime,
        end: datetime,
        *,
        size: int,
        created_by: str,
        status: str = "ready",
        error: str | None = None,
    ) -> ExportRecord:
        """Index an export whose object is (for ``"ready"``) already under ``export_key``.

        Args:
            export_id: The id the object key was made from (``new_export_id``).
            camera_id: The camera recorded.
            name: A label for people (at most 200 characters).
            start: The clip's wall-clock start.
            end: The clip's wall-clock end.
            size: The object's size in bytes (0 for a failed export).
            created_by: The subject of the principal who asked for it.
            status: ``"ready"`` or ``"failed"``.
            error: Why it failed (truncated to 2000 characters).

        Returns:
            The stored row.

        Raises:
            ValueError: If the status is unknown, a time is naive, ``end`` is before ``start``,
                the name is too long or an id is not a valid key segment.
        """
        check_choice(status, EXPORT_STATUSES, "status")
        if len(name) > _MAX_NAME:
            raise ValueError(f"name must be at most {_MAX_NAME} characters")
        start, end = utc_range(start, end)
        if size < 0:
            raise ValueError(f"size must be >= 0, but got {size}")
        key = export_key(camera_id, export_id)
        values = {
            "id": export_id,
            "camera_id": camera_id,
            "name": name,
            "start_at": start,
            "end_at": end,
            "object_key": key,
            "size": int(size),
            "created_by": created_by[:64],
            "created_at": as_utc(self._clock(), "clock()"),
            "status": status,
            "error": None if error is None else error[:_MAX_ERROR],
        }
        with self._engine.begin() as conn:
            conn.execute(sa.insert(EXPORTS).values(**values))
            row = conn.execute(sa.select(EXPORTS).where(EXPORTS.c.id == export_id))
            return _to_record(row.mappings().one())

    def get(self, export_id: str) -> ExportRecord | None:
        """The export with this id, or None."""
        query = sa.select(EXPORTS).where(EXPORTS.c.id == export_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_record(row)

    def list(
        self,
        *,
        cameras: Collection[str] | None = None,
        camera_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ExportRecord]:
        """Exports, newest first (by ``created_at``, then id).

        Args:
            cameras: Only exports of these cameras; None: every camera.
            camera_id: Only this camera's.
            limit: The most rows, 1 to 1000.
            offset: Rows to skip.

        Raises:
            ValueError: If ``limit`` or ``offset`` is out of bounds.
        """
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}, but got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, but got {offset}")
        c = EXPORTS.c
        query = sa.select(EXPORTS)
        if cameras is not None:
            if not cameras:
                return []
            query = query.where(c.camera_id.in_(sorted(cameras)))
        if camera_id is not None:
            query = query.where(c.camera_id == camera_id)
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            return [_to_record(row) for row in conn.execute(query).mappings()]

    def delete(self, export_id: str) -> bool:
        """Delete the row (not the object); False if there was none."""
        with self._engine.begin() as conn:
            done = conn.execute(sa.delete(EXPORTS).where(EXPORTS.c.id == export_id))
        return done.rowcount > 0
