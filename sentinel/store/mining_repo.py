"""Repository of the hard-example mining jobs (``mining_jobs``).

The service that runs the jobs writes each job whole (:meth:`MiningJobRepository.save`) at
every change of state, and on its start fails the jobs a dead process left unfinished
(:meth:`MiningJobRepository.fail_unfinished`); the API reads them back, one or the newest
first, limited to the cameras the caller may see.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.mining_tables import MINING_JOB_STATES, MINING_JOBS
from sentinel.store.sql import check_choice, check_page_size, require_aware, upsert_insert

__all__ = ["MINING_JOB_STATES", "UNFINISHED", "MiningJobRecord", "MiningJobRepository"]

UNFINISHED = frozenset({"queued", "running"})
_MAX_ERROR = 4000


@dataclass(frozen=True, slots=True)
class MiningJobRecord:
    """One stored job (the fields of ``sentinel.train.mine_service.MiningJob``)."""

    id: str
    camera_id: str
    start: datetime
    end: datetime
    budget: int
    state: str
    created_at: datetime
    finished_at: datetime | None = None
    chunks: int = 0
    chunks_skipped: int = 0
    frames_scanned: int = 0
    frames_skipped: int = 0
    chosen: int = 0
    enqueued: int = 0
    duplicates: int = 0
    item_ids: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error: str | None = None
    model_version: int | None = None
    started_at: datetime | None = None
    created_by: str | None = None


_COUNTS = (
    "chunks",
    "chunks_skipped",
    "frames_scanned",
    "frames_skipped",
    "chosen",
    "enqueued",
    "duplicates",
)


def _row(job: MiningJobRecord) -> dict[str, Any]:
    request = {
        "camera_id": job.camera_id,
        "start": job.start.isoformat(),
        "end": job.end.isoformat(),
        "budget": job.budget,
    }
    result = {"item_ids": job.item_ids, "reasons": job.reasons, "errors": job.errors}
    return {
        "id": job.id,
        "camera_id": job.camera_id,
        "request": json.dumps(request),
        "state": job.state,
        **{k: getattr(job, k) for k in _COUNTS},
        "result": json.dumps(result),
        "error": None if job.error is None else job.error[:_MAX_ERROR],
        "model_version": job.model_version,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _record(row: sa.RowMapping) -> MiningJobRecord:
    request = json.loads(row["request"])
    result = json.loads(row["result"])
    return MiningJobRecord(
        id=row["id"],
        camera_id=row["camera_id"],
        start=datetime.fromisoformat(request["start"]),
        end=datetime.fromisoformat(request["end"]),
        budget=int(request["budget"]),
        state=row["state"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        **{k: int(row[k]) for k in _COUNTS},
        item_ids=list(result.get("item_ids", [])),
        reasons=dict(result.get("reasons", {})),
        errors=list(result.get("errors", [])),
        error=row["error"],
        model_version=row["model_version"],
        started_at=row["started_at"],
        created_by=row["created_by"],
    )


class MiningJobRepository(Repository):
    """Stores mining jobs (see the module docstring)."""

    def save(self, job: MiningJobRecord) -> None:
        """Stores ``job`` whole: a new one, or the new state of a known one.

        Raises:
            ValueError: An unknown state, or a naive time.
        """
        check_choice(job.state, MINING_JOB_STATES, "state")
        for name in ("start", "end", "created_at", "started_at", "finished_at"):
            require_aware(getattr(job, name), name)
        values = {**_row(job), "updated_at": self._now()}
        changed = {k: v for k, v in values.items() if k not in ("id", "created_at")}
        stmt = upsert_insert(self._engine, MINING_JOBS).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=[MINING_JOBS.c.id], set_=changed)
        with self._write() as conn:
            conn.execute(stmt)

    def get(self, job_id: str) -> MiningJobRecord | None:
        c = MINING_JOBS.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(MINING_JOBS).where(c.id == job_id)).mappings().first()
        return None if row is None else _record(row)

    def list(
        self, *, limit: int = 50, camera_ids: Collection[str] | None = None
    ) -> builtins.list[MiningJobRecord]:
        """The newest ``limit`` jobs first, of ``camera_ids`` only (None: every camera).

        Raises:
            ValueError: If ``limit`` is out of bounds.
        """
        check_page_size(limit)
        c = MINING_JOBS.c
        query = sa.select(MINING_JOBS).order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        if camera_ids is not None:
            query = query.where(c.camera_id.in_(sorted(camera_ids)))
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def fail_unfinished(self, reason: str) -> builtins.list[str]:
        """Marks every queued or running job failed with ``reason`` (their runner is gone);
        returns their ids. Call it only where one service runs the database's jobs, as it
        starts: a live runner's jobs would be failed too."""
        c = MINING_JOBS.c
        now = self._now()
        unfinished = c.state.in_(sorted(UNFINISHED))
        with self._write() as conn:
            ids = [str(i) for i in conn.execute(sa.select(c.id).where(unfinished)).scalars()]
            if ids:
                conn.execute(
                    sa.update(MINING_JOBS)
                    .where(c.id.in_(ids), unfinished)
                    .values(
                        state="failed", error=reason[:_MAX_ERROR], finished_at=now, updated_at=now
                    )
                )
        return ids
