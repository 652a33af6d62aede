"""Mining jobs in the database (``mining_jobs``, migration 0024), on SQLite and PostgreSQL: the
repository stores a job whole and reads it back, lists the newest first within camera limits,
and fails the jobs a dead service left unfinished; a job's status survives a new service over
the same database (the restart), and a job it interrupted reads failed, with the reason."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sentinel.config import DetectorSettings, MiningSettings
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.db import make_engine
from sentinel.store.mining_repo import MiningJobRecord, MiningJobRepository
from sentinel.store.objects import LocalObjectStore
from sentinel.store.segment_repo import SegmentRepository
from sentinel.train.feedback import queued_hashes
from sentinel.train.mine_service import (
    INTERRUPTED,
    DetectorSpec,
    LocalMiningService,
    MiningJob,
    MiningRequest,
    mining_params,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(
    job_id: str, camera: str = "gate", *, at: datetime = T0, **kw: object
) -> MiningJobRecord:
    base = MiningJobRecord(job_id, camera, T0, T0 + timedelta(minutes=5), 10, "queued", at)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_migration_0024_matches_the_model_and_downgrades(db_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from sentinel.store.db import alembic_config, migrate
    from sentinel.store.mining_tables import MINING_JOBS

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0023")
            conn.commit()
        assert not sa.inspect(engine).has_table("mining_jobs")
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: (
                    kind != "table" or name == MINING_JOBS.name
                )
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0023")
            conn.commit()
        assert not sa.inspect(engine).has_table("mining_jobs")
        assert sa.inspect(engine).has_table("push_subscriptions")
    finally:
        engine.dispose()


def test_a_job_is_stored_whole_and_each_change_replaces_it(store_engine: Engine) -> None:
    repo = MiningJobRepository(store_engine)
    assert repo.get("nope") is None
    repo.save(record("j1", created_by="root"))
    assert repo.get("j1") == record("j1", created_by="root")
    running = record("j1", state="running", started_at=T0, chunks=3, frames_scanned=8,
                     model_version=7, created_by="root")  # fmt: skip
    repo.save(running)
    assert repo.get("j1") == running
    done = replace(
        running,
        state="done",
        finished_at=T0 + timedelta(minutes=1),
        chosen=2,
        enqueued=1,
        duplicates=1,
        item_ids=["i1"],
        reasons={"flicker": 2},
        errors=["s1: unreadable"],
    )
    repo.save(done)
    got = repo.get("j1")
    assert got == done and got.start.tzinfo is not None and got.created_at == T0
    with pytest.raises(ValueError, match="state must be one of"):
        repo.save(record("j2", state="paused"))
    with pytest.raises(ValueError, match="start"):
        repo.save(record("j2", start=datetime(2026, 3, 1, 12, 0)))  # naive
    assert repo.get("j2") is None


def test_jobs_are_listed_newest_first_within_camera_limits(store_engine: Engine) -> None:
    repo = MiningJobRepository(store_engine)
    for i, camera in enumerate(["gate", "yard", "gate", "door"]):
        repo.save(record(f"j{i}", camera, at=T0 + timedelta(minutes=i)))
    assert [j.id for j in repo.list()] == ["j3", "j2", "j1", "j0"]
    assert [j.id for j in repo.list(limit=2)] == ["j3", "j2"]
    assert [j.id for j in repo.list(camera_ids={"gate", "door"})] == ["j3", "j2", "j0"]
    assert repo.list(camera_ids=set()) == []
    with pytest.raises(ValueError, match="limit"):
        repo.list(limit=0)


def test_unfinished_jobs_are_failed_with_the_reason(store_engine: Engine) -> None:
    repo = MiningJobRepository(store_engine, clock=lambda: T0 + timedelta(hours=1))
    repo.save(record("queued"))
    repo.save(record("running", state="running", started_at=T0, chunks=2))
    done = record("done", state="done", finished_at=T0)
    repo.save(done)
    assert sorted(repo.fail_unfinished("gone")) == ["queued", "running"]
    for job_id in ("queued", "running"):
        job = repo.get(job_id)
        assert job is not None and job.state == "failed" and job.error == "gone"
        assert job.finished_at == T0 + timedelta(hours=1)
    running = repo.get("running")
    assert running is not None and running.chunks == 2  # its progress so far stays
    assert repo.get("done") == done
    assert repo.fail_unfinished("again") == []


def _service(engine: Engine, tmp_path: Path) -> LocalMiningService:
    """A local service; its jobs here mine stretches without recordings (no detector needed)."""
    mining = MiningSettings(sample_fps=1.0)
    detector = DetectorSettings(model_path=tmp_path / "absent.onnx", threads=1)
    objects = LocalObjectStore(tmp_path / "objects")
    return LocalMiningService(
        engine=engine,
        segments=SegmentRepository(engine),
        load=lambda chunk: objects.get(chunk.location),
        detector=DetectorSpec.of(detector, tmp_path / "absent.onnx", mining),
        params=mining_params(mining, detector),
        mining=mining,
        enqueue=AnnotationRepo(engine, objects).enqueue,
        queued=lambda camera: queued_hashes(engine, camera),
    )


async def _finished(service: LocalMiningService, job_id: str) -> MiningJob:
    """Waits (polling, 30 s at most) for the job to end."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = await service.status(job_id)
        if job is not None and job.finished:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"mining job {job_id} did not end in 30 s")


def test_a_status_survives_a_restart_and_an_interrupted_job_reads_failed(
    store_engine: Engine, tmp_path: Path
) -> None:
    async def scenario() -> None:
        first = _service(store_engine, tmp_path)
        request = MiningRequest("gate", T0, T0 + timedelta(minutes=1), 5)
        job_id = await first.submit(request, "root")
        done = await _finished(first, job_id)
        assert done.state == "done", done
        assert done.started_at is not None and done.finished_at is not None
        assert done.created_by == "root" and done.chunks == 0

        # A job the first service was running when its process died, as the table keeps it.
        stranded = MiningJob.of(MiningRequest("yard", T0, T0 + timedelta(minutes=1), 5))
        stranded.mark_running(datetime.now(UTC))
        first.store.save(stranded)
        assert (await first.status(stranded.id)).state == "running"  # type: ignore[union-attr]

        engine = make_engine(store_engine.url.render_as_string(hide_password=False))
        try:  # a new process: a new engine, a new service over the same database
            second = _service(engine, tmp_path)
            again = await second.status(job_id)
            assert again is not None and again.as_dict() == done.as_dict()
            lost = await second.status(stranded.id)
            assert lost is not None and lost.state == "failed" and lost.error == INTERRUPTED
            assert lost.finished_at is not None and lost.started_at is not None
            listed = await second.jobs(limit=10, camera_ids=None)
            assert [j.id for j in listed] == [stranded.id, job_id]
            assert [j.id for j in await second.jobs(limit=10, camera_ids={"gate"})] == [job_id]
            assert await second.status("unknown") is None
        finally:
            engine.dispose()

    asyncio.run(scenario())
