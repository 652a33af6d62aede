"""The search indexing queue on real databases (SQLite and PostgreSQL): fed in the same
transaction as event and incident writes, leased and completed under lease tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.incidents import Incident
from sentinel.domain.types import Box, EventState
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.repo import EventRepository
from sentinel.store.search_queue_repo import SearchQueue

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def state(
    event_id: str = "e1", *, last_seen: float = 1.0, ended: float | None = None
) -> EventState:
    return EventState(
        id=event_id,
        camera_id="gate",
        label="person",
        track_id=1,
        started_at=T0,
        last_seen_at=T0 + timedelta(seconds=last_seen),
        score=0.8,
        box=Box(10, 20, 50, 120),
        best_at=T0,
        ended_at=None if ended is None else T0 + timedelta(seconds=ended),
        path=[(30.0, 70.0)],
    )


def test_the_queue_table_matches_its_model(store_engine: Engine) -> None:
    with store_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diffs if "search_queue" in repr(d)] == []


def test_only_a_stored_close_queues_the_event(store_engine: Engine) -> None:
    events, queue = EventRepository(store_engine), SearchQueue(store_engine)
    events.upsert(state(last_seen=1.0))
    assert queue.status("e1") is None  # open: not indexed yet
    events.upsert(state(last_seen=2.0, ended=2.0))
    assert queue.status("e1") == ("pending", "upsert", 0)
    [lease] = queue.lease(10, 30.0)
    assert queue.complete(lease)
    assert queue.status("e1") == ("done", "upsert", 1)
    events.upsert(state(last_seen=1.0))  # a stale replay is not written, so not queued
    assert queue.status("e1") == ("done", "upsert", 1)
    events.upsert(state(last_seen=2.0, ended=2.0))  # an exact replay of the close: rewritten
    assert queue.status("e1") == ("pending", "upsert", 0)


def test_a_new_enqueue_fences_the_lease_in_flight(store_engine: Engine) -> None:
    clock = Clock()
    queue = SearchQueue(store_engine, clock=clock)
    queue.enqueue("e1")
    [old] = queue.lease(10, 30.0)
    assert queue.lease(10, 30.0) == []  # held
    queue.enqueue("e1")  # the event changed while it was being indexed
    assert not queue.complete(old)  # the old state must not mark the new one done
    [new] = queue.lease(10, 30.0)
    assert new.token != old.token
    assert queue.complete(new)
    assert queue.backlog() == 0


def test_leases_expire_and_errors_retry_later(store_engine: Engine) -> None:
    clock = Clock()
    queue = SearchQueue(store_engine, clock=clock)
    queue.enqueue("a")
    clock.now += timedelta(seconds=1)
    queue.enqueue("b", "incident", "delete")
    assert queue.oldest_pending_age_s() == pytest.approx(1.0)
    first = queue.lease(1, 30.0)
    assert [x.item_id for x in first] == ["a"]
    assert queue.complete(first[0], "embedder down")  # handed back: leased until expiry
    second = queue.lease(5, 30.0)
    assert [(x.item_id, x.kind, x.op) for x in second] == [("b", "incident", "delete")]
    clock.now += timedelta(seconds=31)
    again = queue.lease(5, 30.0)
    assert [x.item_id for x in again] == ["a", "b"]
    assert queue.status("a") == ("leased", "upsert", 2)
    assert queue.complete(again[0], "bad", failed=True)
    assert queue.status("a") == ("failed", "upsert", 2)
    with pytest.raises(ValueError):
        queue.lease(0, 1.0)
    with pytest.raises(ValueError):
        queue.enqueue("c", "camera")


def test_incident_close_and_agent_summary_queue_their_item(store_engine: Engine) -> None:
    incidents, queue = IncidentRepository(store_engine), SearchQueue(store_engine)
    events = EventRepository(store_engine)
    events.upsert(state("e1", last_seen=5.0, ended=5.0))
    inc = Incident(
        id="i1",
        camera_id="gate",
        started_at=T0,
        last_seen_at=T0 + timedelta(seconds=5),
        ended_at=None,
        members=("e1",),
        labels=("person",),
    )
    incidents.upsert(inc)
    assert queue.status("i1") is None
    incidents.upsert(replace(inc, ended_at=T0 + timedelta(seconds=5), revision=2))
    assert queue.status("i1") == ("pending", "upsert", 0)

    alerts = AlertRepository(store_engine)
    for lease in queue.lease(10, 30.0):
        queue.complete(lease)
    decision = AlertDecision(
        alert=True,
        severity=Severity.LOW,
        summary="rules",
        reasons=(),
        recommended_action="",
        decided_by=DecidedBy.RULES,
    )
    alerts.record_rule_decision("e1", "gate", "person", decision)
    assert queue.status("e1") == ("done", "upsert", 1)  # the rules' decision changes no text
    agent = AlertDecision(
        alert=True,
        severity=Severity.HIGH,
        summary="A man in a red jacket tried the door.",
        reasons=("door",),
        recommended_action="call",
        decided_by=DecidedBy.LLM,
    )
    assert alerts.amend("e1", agent) is not None
    assert queue.status("e1") == ("pending", "upsert", 0)


def test_expired_rows_queue_their_removal_in_the_same_transaction(store_engine: Engine) -> None:
    events, incidents = EventRepository(store_engine), IncidentRepository(store_engine)
    queue = SearchQueue(store_engine)
    for i, end in enumerate((5.0, 10.0, 30.0)):
        events.upsert(state(f"e{i}", last_seen=end, ended=end), f"gate/e{i}.jpg")
    events.upsert(state("open", last_seen=1.0))  # never expired while open
    closed = Incident(
        id="i1",
        camera_id="gate",
        started_at=T0,
        last_seen_at=T0 + timedelta(seconds=10),
        ended_at=T0 + timedelta(seconds=10),
        members=("e0", "e1"),
        labels=("person",),
    )
    incidents.upsert(closed)
    incidents.upsert(replace(closed, id="i2", ended_at=None, members=("e2",)))
    cutoff = T0 + timedelta(seconds=20)
    assert events.expire("dock", cutoff) == []  # another camera's events stay
    assert events.expire("gate", cutoff, limit=1) == [("e0", "gate/e0.jpg")]
    assert events.expire("gate", cutoff) == [("e1", "gate/e1.jpg")]
    assert events.get("e2") is not None and events.get("open") is not None
    assert incidents.expire("gate", cutoff) == ["i1"]
    assert incidents.get("i1") is None and incidents.get("i2") is not None
    assert incidents.of_event("e0") == []
    for item_id in ("e0", "e1", "i1"):
        assert queue.status(item_id) == ("pending", "delete", 0)
    kinds = {lease.item_id: (lease.kind, lease.op) for lease in queue.lease(10, 30.0)}
    assert kinds["i1"] == ("incident", "delete") and kinds["e0"] == ("event", "delete")
    with pytest.raises(ValueError):
        events.expire("gate", datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        incidents.expire("gate", cutoff, limit=0)
