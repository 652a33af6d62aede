"""Alert agent storage on real databases (every test on SQLite and PostgreSQL)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.experiments import Variant
from sentinel.store.alert_repo import (
    AgentQueue,
    AlertRepository,
    ExperimentRepository,
    InvalidCursor,
    PromptRepository,
)
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.repo import CameraRepository
from sentinel.store.security_repo import UserRepository

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T = TypeVar("T")
TABLES = {"alerts", "agent_queue", "prompts", "prompt_active", "experiments"}


class Clock:
    """A settable clock: ``clock.t`` seconds after T0."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


def rules(alert: bool = True, severity: Severity = Severity.MEDIUM) -> AlertDecision:
    reasons = ("person", "after hours")
    return AlertDecision(alert, severity, "person here", reasons, "check", DecidedBy.RULES)


LLM = AlertDecision(
    alert=False,
    severity=Severity.LOW,
    summary="the mail carrier",
    reasons=("uniform", "daytime", "é"),
    recommended_action="none",
    decided_by=DecidedBy.LLM,
    prompt_version="3",
    model="qwen2.5-7b",
    backend="vllm",
    latency_ms=812.5,
    prompt_tokens=900,
    completion_tokens=120,
    parse_failures=1,
)


def parallel(count: int, fn: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(fn, range(count)))


# --- alerts -----------------------------------------------------------------------------------


def test_rule_decision_is_recorded_once(store_engine: Engine) -> None:
    clock = Clock()
    repo = AlertRepository(store_engine, clock=clock)
    first = repo.record_rule_decision("e1", "front", "person", rules())
    assert first.status == "open" and first.llm_status == "pending"
    assert first.created_at == T0 and first.reasons == ("person", "after hours")
    assert first.decision() == rules()

    clock.t = 5
    again = repo.record_rule_decision("e1", "front", "car", rules(False, Severity.HIGH))
    assert again == first
    assert repo.get(first.id) == first == repo.by_event("e1")
    assert repo.get("nope") is None and repo.by_event("nope") is None
    assert parallel(4, lambda _: repo.record_rule_decision("e2", "back", "person", rules()).id)
    assert len({r.id for r in repo.list()[0]}) == 2
    with pytest.raises(ValueError, match="llm_status"):
        repo.record_rule_decision("e3", "front", "person", rules(), llm_status="bogus")


def test_amend_withdraw_and_llm_status(store_engine: Engine) -> None:
    clock = Clock()
    repo = AlertRepository(store_engine, clock=clock)
    created = repo.record_rule_decision("e1", "front", "person", rules())
    assert repo.amend("missing", LLM) is None

    clock.t = 2
    amended = repo.amend("e1", LLM, experiment_id="x1", variant="b")
    assert amended is not None
    assert amended.decision() == LLM and amended.status == "open"
    assert amended.llm_status == "done" and amended.updated_at == clock()
    assert (amended.experiment_id, amended.variant) == ("x1", "b")
    assert (amended.id, amended.created_at) == (created.id, created.created_at)
    withdrawn = repo.amend("e1", LLM, withdrawn=True)
    assert withdrawn is not None and withdrawn.status == "withdrawn"
    assert withdrawn.experiment_id is None
    # A later judgement (a material change) that alerts after all opens it again.
    assert repo.amend("e1", replace(LLM, alert=True)) is not None
    assert repo.by_event("e1").status == "open"  # type: ignore[union-attr]

    repo.record_rule_decision("e2", "front", "person", rules())
    assert repo.set_llm_status("e2", "failed", "timeout")
    failed = repo.by_event("e2")
    assert failed is not None and (failed.llm_status, failed.llm_error) == ("failed", "timeout")
    assert not repo.set_llm_status("missing", "shed")
    with pytest.raises(ValueError, match="status"):
        repo.set_llm_status("e2", "exploded")
    # A re-judgement of a judged alert that fails (or is shed) leaves its judgement standing.
    assert repo.set_llm_status("e1", "pending")
    assert repo.set_llm_status("e1", "failed", "TimeoutError")
    rejudged = repo.by_event("e1")
    assert rejudged is not None and rejudged.decision() == replace(LLM, alert=True)
    assert (rejudged.llm_status, rejudged.llm_error) == ("done", "TimeoutError")


def test_list_filters_scope_and_keyset_pagination(store_engine: Engine) -> None:
    clock = Clock()
    repo = AlertRepository(store_engine, clock=clock)
    cameras = ["a", "b", "c"]
    for n in range(12):
        clock.t = n // 2  # pairs share created_at: the id breaks the tie
        severity = Severity.HIGH if n % 3 == 0 else Severity.LOW
        repo.record_rule_decision(f"e{n}", cameras[n % 3], "person", rules(n % 2 == 0, severity))
    repo.amend("e4", LLM, withdrawn=True, experiment_id="x1", variant="a")
    repo.amend("e7", LLM, experiment_id="x1", variant="b")
    assert [(r.event_id, r.variant) for r in repo.experiment_rows("x1")] == [
        ("e4", "a"),
        ("e7", "b"),
    ]
    assert repo.experiment_rows("x2") == []

    everything, cursor = repo.list()
    assert cursor is None and len(everything) == 12
    keys = [(r.created_at, r.id) for r in everything]
    assert keys == sorted(keys, reverse=True)

    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = repo.list(limit=5, cursor=cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == [r.id for r in everything]

    def events(**filters: object) -> set[str]:
        return {r.event_id for r in repo.list(**filters)[0]}  # type: ignore[arg-type]

    assert events(camera_ids=["a", "b"]) == {f"e{n}" for n in range(12) if n % 3 != 2}
    assert events(camera_ids=[]) == set()
    assert events(camera_ids=["a"], camera_id="b") == set()
    assert events(camera_id="c") == {"e2", "e5", "e8", "e11"}
    assert events(status="withdrawn") == {"e4"}
    assert events(severity="high") == {"e0", "e3", "e6", "e9"}
    assert events(alert=True) == {"e0", "e2", "e6", "e8", "e10"}  # e4 amended to no alert
    assert events(alert=False, camera_id="b") == {"e1", "e4", "e7"}
    assert events(since=T0 + timedelta(seconds=4)) == {"e8", "e9", "e10", "e11"}
    assert events(until=T0 + timedelta(seconds=1)) == {"e0", "e1", "e2", "e3"}

    with pytest.raises(InvalidCursor):
        repo.list(cursor="not-a-cursor")
    with pytest.raises(ValueError, match="limit"):
        repo.list(limit=0)
    with pytest.raises(ValueError, match="timezone"):
        repo.list(since=datetime(2025, 1, 1))


def test_acknowledge_and_feedback(store_engine: Engine) -> None:
    repo = AlertRepository(store_engine, clock=Clock())
    alert = repo.record_rule_decision("e1", "front", "person", rules())
    later = T0 + timedelta(minutes=1)

    acked = repo.acknowledge(alert.id, "alice", later)
    assert acked is not None and acked.status == "acknowledged"
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("alice", later)
    assert repo.acknowledge(alert.id, "bob", later + timedelta(1)) == acked  # first one wins
    assert repo.acknowledge("missing", "alice", later) is None

    gone = repo.record_rule_decision("e2", "front", "person", rules())
    repo.amend("e2", LLM, withdrawn=True)
    with pytest.raises(ValueError, match="withdrawn"):
        repo.acknowledge(gone.id, "alice", later)

    judged = repo.feedback(alert.id, "false_positive", "the cat", "alice", later)
    assert judged is not None and judged.verdict == "false_positive"
    assert (judged.verdict_note, judged.verdict_by) == ("the cat", "alice")
    rejudged = repo.feedback(alert.id, "true_positive", None, "bob", later + timedelta(hours=1))
    assert rejudged is not None and rejudged.verdict == "true_positive"
    assert (rejudged.verdict_note, rejudged.verdict_by) == (None, "bob")
    assert rejudged.verdict_at == later + timedelta(hours=1)
    assert rejudged.status == "acknowledged"
    assert repo.feedback("missing", "true_positive", None, "bob", later) is None
    with pytest.raises(ValueError, match="verdict"):
        repo.feedback(alert.id, "maybe", None, "bob", later)
    with pytest.raises(ValueError, match="timezone"):
        repo.feedback(alert.id, "true_positive", None, "bob", datetime(2025, 1, 1))


# --- queue ------------------------------------------------------------------------------------


def test_queue_enqueue_is_idempotent(store_engine: Engine) -> None:
    clock = Clock()
    queue = AgentQueue(store_engine, clock=clock)
    assert queue.oldest_pending_age_s() is None
    assert queue.enqueue("e1") is True
    clock.t = 4
    assert queue.enqueue("e1") is False
    assert queue.enqueue("e2") is True
    assert queue.backlog() == 2
    clock.t = 10
    assert queue.oldest_pending_age_s() == pytest.approx(10.0)
    assert queue.lease(1, 30) == ["e1"]
    assert queue.enqueue("e1") is False
    assert queue.oldest_pending_age_s() == pytest.approx(6.0)
    assert queue.backlog() == 2
    assert queue.complete("e1", "done")
    assert not queue.complete("missing", "done")
    assert queue.backlog() == 1 and queue.status("e1") == ("done", 1)
    with pytest.raises(ValueError, match="status"):
        queue.complete("e2", "leased")


def test_lease_is_exclusive_between_workers(db_url: str, store_engine: Engine) -> None:
    items = [f"e{n:03d}" for n in range(120)]
    clock = Clock()
    for n, item in enumerate(items):
        clock.t = n
        AgentQueue(store_engine, clock=clock).enqueue(item)
    engines = [store_engine, make_engine(db_url)]  # two pools, as two processes would have
    barrier = threading.Barrier(4)
    leased: list[list[str]] = [[] for _ in range(4)]

    def work(worker: int) -> None:
        queue = AgentQueue(engines[worker % 2])
        barrier.wait()
        while batch := queue.lease(3, 600):
            leased[worker].extend(batch)

    try:
        parallel(4, work)
    finally:
        engines[1].dispose()
    everything = [item for batch in leased for item in batch]
    assert sorted(everything) == items  # every item once: none leased twice, none lost
    assert sum(1 for batch in leased if batch) >= 2
    assert all(batch == sorted(batch) for batch in leased)  # oldest first within a worker
    assert AgentQueue(store_engine).backlog() == 120


def test_expired_lease_is_leased_again(store_engine: Engine) -> None:
    clock = Clock()
    queue = AgentQueue(store_engine, clock=clock)
    for item in ("e1", "e2"):
        queue.enqueue(item)
    assert queue.lease(1, 30) == ["e1"]
    clock.t = 29
    assert queue.lease(5, 30) == ["e2"]
    assert queue.lease(5, 30) == []
    clock.t = 31
    assert queue.lease(5, 30) == ["e1"]  # its worker died: the lease expired
    assert queue.status("e1") == ("leased", 2)
    assert queue.status("e2") == ("leased", 1)
    assert queue.complete("e2", "pending", "backend busy")  # handed back
    assert queue.lease(5, 30) == ["e2"] and queue.status("e2") == ("leased", 2)
    assert queue.complete("e1", "failed", "boom") and queue.complete("e2", "done")
    clock.t = 1000
    assert queue.lease(5, 30) == [] and queue.backlog() == 0
    with pytest.raises(ValueError, match="limit"):
        queue.lease(0, 30)
    with pytest.raises(ValueError, match="lease_s"):
        queue.lease(1, 0)


def test_shed_older_than(store_engine: Engine) -> None:
    clock = Clock()
    queue = AgentQueue(store_engine, clock=clock)
    for n in range(4):
        clock.t = 10 * n
        queue.enqueue(f"e{n}")
    assert queue.lease(1, 600) == ["e0"]
    clock.t = 35
    assert queue.shed_older_than(15) == ["e1"]  # e2 is exactly 15 s old: not older
    clock.t = 36
    assert queue.shed_older_than(15) == ["e2"]  # e0 is leased: not shed
    assert queue.status("e1") == ("shed", 0)
    assert queue.shed_older_than(15) == []
    assert queue.backlog() == 2
    assert queue.oldest_pending_age_s() == pytest.approx(6.0)
    assert queue.lease(5, 600) == ["e3"]


# --- prompts and experiments ------------------------------------------------------------------


def test_prompt_versions_activation_and_deletion(store_engine: Engine) -> None:
    clock = Clock()
    prompts = PromptRepository(store_engine, clock=clock)
    assert prompts.versions("triage") == [] and prompts.active("triage") is None
    first = prompts.create_version("triage", "You judge events.", "Event: {label}", "alice")
    assert (first.version, first.created_at, first.created_by) == (1, T0, "alice")
    assert prompts.get("triage", 1) == first
    numbers = parallel(6, lambda n: prompts.create_version("triage", "s", f"t{n}", "bob").version)
    assert sorted(numbers) == [2, 3, 4, 5, 6, 7]
    assert [p.version for p in prompts.versions("triage")] == list(range(1, 8))
    assert prompts.create_version("other", "s", "t", "alice").version == 1
    assert prompts.names() == ["other", "triage"]

    assert not prompts.activate("triage", 99)
    assert prompts.activate("triage", 2)
    assert prompts.active("triage") == prompts.get("triage", 2)
    assert prompts.activate("triage", 1)
    assert prompts.active("triage") == first
    assert prompts.active("other") is None

    with pytest.raises(ValueError, match="active"):
        prompts.delete_version("triage", 1)
    assert prompts.delete_version("triage", 2)
    assert not prompts.delete_version("triage", 2)
    assert prompts.get("triage", 2) is None
    assert prompts.create_version("triage", "s", "t", "alice").version == 8
    with pytest.raises(ValueError, match="name"):
        prompts.create_version("", "s", "t", "alice")


def test_experiments_crud(store_engine: Engine) -> None:
    clock = Clock()
    experiments = ExperimentRepository(store_engine, clock=clock)
    variants = [Variant("a", "1", 1.0), Variant("b", "2", 3.0)]
    created = experiments.create("terse-vs-long", "triage", variants)
    assert created.status == "running" and created.winner is None
    assert created.variants == tuple(variants) and created.created_at == T0
    assert experiments.get(created.id) == created
    assert experiments.running_for("triage") == created
    assert experiments.running_for("other") is None
    with pytest.raises(ValueError, match="exists"):
        experiments.create("terse-vs-long", "other", variants)
    for bad in ([], [variants[0], variants[0]], [Variant("a", "1", 0.0)]):
        with pytest.raises(ValueError, match="variant"):
            experiments.create("bad", "triage", bad)

    clock.t = 1
    second = experiments.create("second", "other", variants[:1])
    assert [e.name for e in experiments.list()] == ["second", "terse-vs-long"]
    with pytest.raises(ValueError, match="winner"):
        experiments.stop(created.id, "c")
    stopped = experiments.stop(created.id, "b")
    assert stopped is not None and (stopped.status, stopped.winner) == ("stopped", "b")
    assert experiments.running_for("triage") is None
    assert experiments.running_for("other") == second
    assert experiments.stop("missing", None) is None
    assert experiments.get("missing") is None


# --- migration --------------------------------------------------------------------------------


def test_migration_0003_upgrades_a_populated_0002_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0002")
            conn.commit()
        CameraRepository(engine).upsert("front", {"url": "rtsp://cam/1"})
        UserRepository(engine).create("alice", "h", "admin", None)
        assert not sa.inspect(engine).has_table("alerts")

        migrate(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (
                ScriptDirectory.from_config(alembic_config()).get_current_head(),
            )
            ours = {"include_object": lambda _o, name, kind, *_: kind != "table" or name in TABLES}
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
            assert diffs == []
        assert CameraRepository(engine).get("front") == {"url": "rtsp://cam/1"}
        assert AlertRepository(engine).record_rule_decision("e1", "front", "person", rules())
        assert AgentQueue(engine).enqueue("e1")
        prompts = PromptRepository(engine)
        assert prompts.activate("triage", prompts.create_version("triage", "s", "t", "a").version)

        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0002")
            conn.commit()
        assert not any(sa.inspect(engine).has_table(table) for table in TABLES)
        assert UserRepository(engine).by_username("alice") is not None
        migrate(engine)
        assert AlertRepository(engine).by_event("e1") is None
    finally:
        engine.dispose()


def test_late_complete_of_an_expired_lease_is_refused(store_engine: Engine) -> None:
    clock = Clock()
    first, second = AgentQueue(store_engine, clock=clock), AgentQueue(store_engine, clock=clock)
    first.enqueue("e1")
    [mine] = first.lease(1, 5)
    clock.t = 6  # the first worker stalls past its lease
    [theirs] = second.lease(1, 30)
    assert mine == theirs == "e1" and mine.token != theirs.token
    assert pickle.loads(pickle.dumps(mine)).token == mine.token  # it may cross processes
    assert second.complete("e1", "done", token=theirs.token)
    assert not first.complete("e1", "failed", "too late", token=mine.token)
    assert first.status("e1") == ("done", 2)
    # A lease that expired but was not taken again still lets its worker finish.
    first.enqueue("e2")
    [slow] = first.lease(1, 5)
    clock.t = 60
    assert first.complete("e2", "done", token=slow.token)
    assert not first.complete("e2", "failed", token=slow.token)  # its lease has ended
    assert first.status("e2") == ("done", 1)
    assert not first.complete("missing", "done", token=slow.token)


def test_migration_0006_adds_the_lease_token_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0005")
            conn.commit()
        AgentQueue(engine).enqueue("old")  # a row from before: no token, still leasable
        migrate(engine)
        with engine.connect() as conn:
            ours = {"include_object": lambda _o, name, kind, *_: kind != "table" or name in TABLES}
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        [item] = AgentQueue(engine).lease(1, 30)
        assert item == "old" and AgentQueue(engine).complete("old", "done", token=item.token)
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0005")
            conn.commit()
        columns = {c["name"] for c in sa.inspect(engine).get_columns("agent_queue")}
        assert "lease_token" not in columns and "leased_until" in columns
    finally:
        engine.dispose()
