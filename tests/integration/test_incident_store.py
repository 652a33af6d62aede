"""The incident store on SQLite and PostgreSQL: idempotent upserts, queries, incident alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.incidents import Incident, KeyFrame
from sentinel.store.alert_repo import AgentQueue, AlertRepository
from sentinel.store.incident_repo import IncidentRepository, InvalidCursor

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def make(n: int, camera: str = "cam-a", **kw: object) -> Incident:
    start = T0 + timedelta(minutes=n)
    values: dict[str, object] = {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "camera_id": camera,
        "started_at": start,
        "last_seen_at": start + timedelta(seconds=20),
        "ended_at": start + timedelta(seconds=20),
        "members": (f"ev-{n}-1", f"ev-{n}-2"),
        "labels": ("person", "car"),
        "key_frames": (KeyFrame(f"ev-{n}-1", "person", 0.9, start),),
        "revision": 3,
    }
    values.update(kw)
    return Incident(**values)  # type: ignore[arg-type]


def test_migration_matches_the_incident_models(store_engine: Engine) -> None:
    with store_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    ours = ("incidents", "incident_members", "ix_alerts_incident_id", "incident_id")
    assert [d for d in diffs if any(name in repr(d) for name in ours)] == []


def test_upsert_round_trips_and_newest_revision_wins(store_engine: Engine) -> None:
    repo = IncidentRepository(store_engine)
    first = make(1, ended_at=None, revision=1, members=("ev-1-1",), labels=("person",))
    repo.upsert(first, {"ev-1-1": "person"})
    assert repo.get(first.id) == first
    newer = make(1, revision=2, previous_id="00000000-0000-0000-0000-000000000009")
    repo.upsert(newer, {"ev-1-1": "person", "ev-1-2": "car"})
    repo.upsert(first, {"ev-1-1": "person"})  # a stale replay changes nothing
    repo.upsert(newer, {"ev-1-1": "person", "ev-1-2": "car"})  # an exact replay neither
    assert repo.get(first.id) == newer
    assert repo.of_event("ev-1-2") == [newer.id]
    assert repo.get("nope") is None


def test_list_filters_and_pages(store_engine: Engine) -> None:
    repo = IncidentRepository(store_engine)
    items = [make(n, camera="cam-a" if n % 2 else "cam-b") for n in range(1, 8)]
    items[6] = replace(items[6], ended_at=None, labels=("dog",), members=("ev-7-1",))
    for inc in items:
        labels = {m: inc.labels[0] if m.endswith("1") else "car" for m in inc.members}
        repo.upsert(inc, labels)
    assert [i.id for i in repo.list().items] == [i.id for i in reversed(items)]
    assert {i.camera_id for i in repo.list(camera_id="cam-b").items} == {"cam-b"}
    assert repo.list(camera_ids=[]).items == []
    assert {i.camera_id for i in repo.list(camera_ids=["cam-a"]).items} == {"cam-a"}
    assert [i.id for i in repo.list(status="open").items] == [items[6].id]
    assert [i.id for i in repo.list(label="dog").items] == [items[6].id]
    assert len(repo.list(label="car").items) == 6
    window = repo.list(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=4, seconds=1))
    assert [i.id for i in window.items] == [items[3].id, items[2].id]
    seen: list[str] = []
    cursor = None
    while True:
        page = repo.list(limit=3, cursor=cursor)
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [i.id for i in reversed(items)]
    assert [i.id for i in repo.open_incidents("cam-a")] == [items[6].id]
    assert repo.open_incidents("cam-b") == []
    recent = repo.recent("cam-a", items[6].started_at, limit=2)
    assert [i.id for i in recent] == [items[4].id, items[2].id]
    with pytest.raises(InvalidCursor):
        repo.list(cursor="garbage")
    with pytest.raises(ValueError):
        repo.list(status="pending")


def _rule() -> AlertDecision:
    return AlertDecision(True, Severity.MEDIUM, "person", ("rule",), "look", DecidedBy.RULES)


def test_one_alert_per_incident_and_requeue(store_engine: Engine) -> None:
    alerts, queue = AlertRepository(store_engine), AgentQueue(store_engine)
    first = alerts.record_rule_decision("ev-1", "cam-a", "person", _rule(), incident_id="inc-1")
    again = alerts.record_rule_decision("ev-2", "cam-a", "person", _rule(), incident_id="inc-1")
    assert again.id == first.id and again.event_id == "ev-1" and again.incident_id == "inc-1"
    assert alerts.by_incident("inc-1") == first
    plain = alerts.record_rule_decision("ev-3", "cam-a", "person", _rule())
    assert plain.incident_id is None
    with pytest.raises(ValueError):  # ev-1's alert belongs to inc-1 already
        alerts.record_rule_decision("ev-1", "cam-a", "person", _rule(), incident_id="inc-2")
    assert queue.enqueue("ev-1")
    assert not queue.requeue("ev-1")  # still pending: its judgement is still to come
    assert queue.lease(1, 60.0) == ["ev-1"]
    assert not queue.requeue("ev-1")  # leased
    queue.complete("ev-1", "done")
    assert queue.requeue("ev-1")
    assert queue.status("ev-1") == ("pending", 0)  # a new judgement: its tries start anew
    assert not queue.requeue("never-queued")
