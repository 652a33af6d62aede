"""The training runs' table and repository (SQLite and PostgreSQL): the migration matches the
model and downgrades; a run moves through its statuses with progress, restarts and the gate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.training_repo import TrainingRunRepository

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_migration_0018_matches_the_model_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: (
                    kind != "table" or name == "training_runs"
                )
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0015")
            conn.commit()
        assert not sa.inspect(engine).has_table("training_runs")
    finally:
        engine.dispose()


def test_a_run_from_queued_to_its_gate(store_engine: Engine) -> None:
    now = [T0]
    repo = TrainingRunRepository(store_engine, clock=lambda: now[0])
    run = repo.create("site", epochs=3, params={"lr": 2e-4}, created_by="alice")
    assert (run.status, run.epoch, run.step, run.attempts) == ("queued", 0, 0, 0)
    assert run.params == {"lr": 2e-4} and run.created_at == T0
    now[0] = T0 + timedelta(seconds=5)
    assert repo.set_status(run.id, "training", dataset_version=2, mlflow_run_id="m1",
                           counts={"unreadable": 1}, total_steps=9)  # fmt: skip
    repo.attempt(run.id, resumed_epoch=None, resumed_step=None)
    repo.progress(run.id, epoch=1, step=3, loss=1.5, worker_pid=42)
    repo.attempt(run.id, resumed_epoch=1, resumed_step=3)
    got = repo.get(run.id)
    assert got is not None
    assert (got.status, got.dataset_version, got.mlflow_run_id) == ("training", 2, "m1")
    assert (got.attempts, got.resumed_epoch, got.resumed_step) == (2, 1, 3)
    assert got.counts == {"unreadable": 1} and got.total_steps == 9 and got.loss == 1.5
    assert got.updated_at == T0 + timedelta(seconds=5) and not got.finished
    repo.finish(run.id, gate={"passed": False}, gate_passed=False, challenger_version=4)
    done = repo.get(run.id)
    assert done is not None and done.finished
    assert (done.status, done.gate_passed, done.challenger_version) == ("succeeded", False, 4)
    assert done.gate == {"passed": False}
    failed = repo.create("site", epochs=1, params={}, created_by="bob")
    repo.finish(failed.id, error="DatasetError: " + "x" * 5000)
    got = repo.get(failed.id)
    assert got is not None and got.status == "failed" and len(got.error or "") == 4000
    assert [r.id for r in repo.list()] == [failed.id, run.id]  # newest first
    assert repo.get("nope") is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.create("s", epochs=0, params={}, created_by="x"), "epochs must be >= 1"),
        (lambda r: r.set_status("id", "succeeded"), "status must be one of"),
        (lambda r: r.list(limit=0), "limit must be between"),
    ],
)
def test_bad_arguments(
    store_engine: Engine, call: Callable[[TrainingRunRepository], object], message: str
) -> None:
    repo = TrainingRunRepository(store_engine)
    with pytest.raises(ValueError, match=message):
        call(repo)
