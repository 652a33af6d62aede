"""The training runs: what was asked, where each run is, and how it ended.

The API creates a run (``queued``); the training job moves it through ``curating``,
``training`` and ``evaluating`` to ``succeeded`` or ``failed``. The training worker writes its
progress (epoch, step, loss) and, when it starts again after a failure, the epoch and step it
resumed from; the finished run keeps its MLflow run id, the challenger's registry version and
the gate report.
"""

from __future__ import annotations

import builtins
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sentinel.store.clock import Repository
from sentinel.store.sql import check_choice
from sentinel.store.training_tables import TRAINING_RUNS, TRAINING_STATUSES

__all__ = ["TRAINING_STATUSES", "TrainingRun", "TrainingRunRepository", "new_run_id"]

_MAX_LIMIT = 1000
_MAX_ERROR = 4000
FINAL_STATUSES = frozenset({"succeeded", "failed"})


def new_run_id() -> str:
    """A fresh run id (a uuid4 string)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """One stored run."""

    id: str
    dataset: str
    dataset_version: int | None
    status: str
    epochs: int
    epoch: int
    step: int
    total_steps: int | None
    loss: float | None
    attempts: int
    checkpoint_epoch: int | None
    resumed_epoch: int | None
    resumed_step: int | None
    worker_pid: int | None
    mlflow_run_id: str | None
    challenger_version: int | None
    gate_passed: bool | None
    gate: dict[str, Any] | None
    counts: dict[str, Any] | None
    params: dict[str, Any]
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


def _json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _to_run(row: sa.RowMapping) -> TrainingRun:
    return TrainingRun(
        id=row["id"],
        dataset=row["dataset"],
        dataset_version=row["dataset_version"],
        status=row["status"],
        epochs=int(row["epochs"]),
        epoch=int(row["epoch"]),
        step=int(row["step"]),
        total_steps=row["total_steps"],
        loss=row["loss"],
        attempts=int(row["attempts"]),
        checkpoint_epoch=row["checkpoint_epoch"],
        resumed_epoch=row["resumed_epoch"],
        resumed_step=row["resumed_step"],
        worker_pid=row["worker_pid"],
        mlflow_run_id=row["mlflow_run_id"],
        challenger_version=row["challenger_version"],
        gate_passed=row["gate_passed"],
        gate=_json(row["gate"]),
        counts=_json(row["counts"]),
        params=_json(row["params"]) or {},
        error=row["error"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


class TrainingRunRepository(Repository):
    """Reads and writes the training runs.

    Args:
        engine: An engine from ``sentinel.store.db.make_engine`` on a migrated database.
        clock: Returns the current tz-aware time; injectable for tests.
    """

    def create(
        self,
        dataset: str,
        *,
        epochs: int,
        params: dict[str, Any],
        created_by: str,
        dataset_version: int | None = None,
        run_id: str | None = None,
    ) -> TrainingRun:
        """A new ``queued`` run of ``dataset`` (``dataset_version`` None: the newest).

        Raises:
            ValueError: If ``epochs`` < 1.
        """
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, but got {epochs}")
        now = self._now()
        run_id = run_id or new_run_id()
        values = {
            "id": run_id,
            "dataset": dataset[:64],
            "dataset_version": dataset_version,
            "status": "queued",
            "epochs": epochs,
            "epoch": 0,
            "step": 0,
            "attempts": 0,
            "params": json.dumps(params, sort_keys=True, default=str),
            "created_by": created_by[:64],
            "created_at": now,
            "updated_at": now,
        }
        with self._write() as conn:
            conn.execute(sa.insert(TRAINING_RUNS).values(**values))
        run = self.get(run_id)
        assert run is not None
        return run

    def get(self, run_id: str) -> TrainingRun | None:
        """The run with this id, or None."""
        query = sa.select(TRAINING_RUNS).where(TRAINING_RUNS.c.id == run_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_run(row)

    def list(self, *, limit: int = 50, offset: int = 0) -> builtins.list[TrainingRun]:
        """Runs, newest first.

        Raises:
            ValueError: If ``limit`` or ``offset`` is out of bounds.
        """
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}, but got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, but got {offset}")
        c = TRAINING_RUNS.c
        query = (
            sa.select(TRAINING_RUNS)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            return [_to_run(row) for row in conn.execute(query).mappings()]

    def _update(self, run_id: str, **values: Any) -> bool:
        values["updated_at"] = self._now()
        with self._write() as conn:
            done = conn.execute(
                sa.update(TRAINING_RUNS).where(TRAINING_RUNS.c.id == run_id).values(**values)
            )
        return done.rowcount > 0

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        dataset_version: int | None = None,
        mlflow_run_id: str | None = None,
        counts: dict[str, Any] | None = None,
        total_steps: int | None = None,
    ) -> bool:
        """Move the run to ``status`` (not a final one: see :meth:`finish`), recording what
        is known by then. False if there is no such run."""
        check_choice(status, TRAINING_STATUSES - FINAL_STATUSES, "status")
        values: dict[str, Any] = {"status": status}
        if dataset_version is not None:
            values["dataset_version"] = dataset_version
        if mlflow_run_id is not None:
            values["mlflow_run_id"] = mlflow_run_id
        if counts is not None:
            values["counts"] = json.dumps(counts, sort_keys=True)
        if total_steps is not None:
            values["total_steps"] = total_steps
        return self._update(run_id, **values)

    def progress(
        self, run_id: str, *, epoch: int, step: int, loss: float | None, worker_pid: int | None
    ) -> bool:
        """The worker's live progress: epochs done, optimiser steps done, last loss."""
        return self._update(run_id, epoch=epoch, step=step, loss=loss, worker_pid=worker_pid)

    def checkpointed(self, run_id: str, *, epoch: int) -> bool:
        """Ray Train registered the checkpoint taken after ``epoch`` (a restart resumes there)."""
        return self._update(run_id, checkpoint_epoch=epoch)

    def attempt(self, run_id: str, *, resumed_epoch: int | None, resumed_step: int | None) -> bool:
        """A worker (re)started: count it, and where it resumed from (None: from scratch)."""
        values: dict[str, Any] = {"attempts": TRAINING_RUNS.c.attempts + 1}
        if resumed_epoch is not None:
            values["resumed_epoch"] = resumed_epoch
            values["resumed_step"] = resumed_step
        return self._update(run_id, **values)

    def finish(
        self,
        run_id: str,
        *,
        error: str | None = None,
        gate: dict[str, Any] | None = None,
        gate_passed: bool | None = None,
        challenger_version: int | None = None,
    ) -> bool:
        """End the run: ``failed`` with ``error``, else ``succeeded`` (the gate may still have
        refused the model: ``gate_passed``)."""
        values: dict[str, Any] = {
            "status": "failed" if error is not None else "succeeded",
            "finished_at": self._now(),
        }
        if error is not None:
            values["error"] = error[:_MAX_ERROR]
        if gate is not None:
            values["gate"] = json.dumps(gate, sort_keys=True)
        if gate_passed is not None:
            values["gate_passed"] = gate_passed
        if challenger_version is not None:
            values["challenger_version"] = challenger_version
        return self._update(run_id, **values)
