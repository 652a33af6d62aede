"""Retention of derived data on the real store: events, incidents, snapshots and alerts each
have their own period, the sweep removes what is past it (never what a legal hold covers) and
reports what it removed; removals are queued for the search index."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from sentinel.actors.retention import RetentionSweeper
from sentinel.config import StorageSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import LocalObjectStore, snapshot_key
from sentinel.store.repo import EventRepository
from sentinel.store.search_queue_repo import SearchQueue
from tests.integration.test_holds import CAM, NOW, add_event, add_incident, ago

DECISION = AlertDecision(True, Severity.HIGH, "person", ("rule",), "look", DecidedBy.RULES)
AGES = {"e10d": 240, "e5d": 120, "e2d": 48, "e1h": 1}


def seed(engine: Engine, store: LocalObjectStore) -> None:
    """Events that ended about 10 d, 5 d, 2 d and 1 h ago, each with a snapshot and an alert
    created then; incidents 10 d and 2 d ago."""
    for name, hours in AGES.items():
        key = snapshot_key(CAM, name)
        store.put(key, b"\xff\xd8jpeg", "image/jpeg")
        add_event(engine, name, CAM, hours, snapshot=key)
        created = ago(hours)
        alerts = AlertRepository(engine, clock=lambda: created)  # noqa: B023 - used at once
        alerts.record_rule_decision(name, CAM, "person", DECISION)
    for name, hours in (("i10d", 240), ("i2d", 48)):
        add_incident(engine, name, CAM, hours)


def sweep(engine: Engine, store: LocalObjectStore, **days: float) -> dict[str, int]:
    sweeper = RetentionSweeper(
        engine, store, StorageSettings(**days), policies=lambda: {CAM: (None, 30.0)}
    )
    report = sweeper.sweep(now=NOW)
    return {
        "events": report.events_expired,
        "incidents": report.incidents_expired,
        "snapshots": report.snapshots_expired,
        "alerts": report.alerts_expired,
        "held_events": report.held_events,
    }


def test_each_kind_has_its_own_period(store_engine: Engine, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    seed(store_engine, store)
    events = EventRepository(store_engine)
    alerts = AlertRepository(store_engine)
    queue = SearchQueue(store_engine)
    # The camera keeps event footage 30 days: with no own periods nothing derived goes.
    assert set(sweep(store_engine, store).values()) == {0}

    # A legal hold over the 5-day-old event keeps it, its snapshot and its alert.
    HoldRepository(store_engine).create(
        kind="camera_range",
        camera_id=CAM,
        start_at=ago(121),
        end_at=ago(119),
        reason="case",
        created_by="admin",
    )
    done = sweep(
        store_engine, store, events_days=7.0, snapshots_days=1.0, alerts_days=3.0,
        incidents_days=5.0,
    )  # fmt: skip
    assert done == {"events": 1, "incidents": 1, "snapshots": 1, "alerts": 1, "held_events": 0}
    # Events: only the 10-day-old one is past 7 days; its snapshot object went with it.
    assert events.get("e10d") is None and not store.exists(snapshot_key(CAM, "e10d"))
    # Queued for the index: "delete" by the event's expiry, then "upsert" by its alert's; the
    # indexer removes an item it cannot find either way.
    assert queue.status("e10d") is not None
    # Snapshots: the 2-day-old event keeps its row but loses its snapshot; the held one and
    # the 1-hour-old one keep theirs.
    e2d = events.get("e2d")
    assert e2d is not None and e2d.snapshot_key is None
    assert not store.exists(snapshot_key(CAM, "e2d"))
    for kept in ("e5d", "e1h"):
        ev = events.get(kept)
        assert ev is not None and ev.snapshot_key == snapshot_key(CAM, kept)
        assert store.exists(snapshot_key(CAM, kept))
    # Alerts past 3 days: the 10-day-old one goes, the 5-day-old one is held.
    remaining = {a.event_id for a in alerts.list(limit=10)[0]}
    assert remaining == {"e5d", "e2d", "e1h"}
    # Incidents: the 10-day-old one is past 5 days; the 2-day-old one stays.
    incidents = IncidentRepository(store_engine)
    assert incidents.get("i10d") is None and incidents.get("i2d") is not None


def test_a_second_sweep_removes_nothing_more_and_a_release_lets_it_go(
    store_engine: Engine, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    seed(store_engine, store)
    holds = HoldRepository(store_engine)
    held = holds.create(
        kind="camera_range", camera_id=CAM, start_at=ago(300), reason="all", created_by="a"
    )
    days = {"events_days": 1.0, "alerts_days": 1.0, "incidents_days": 1.0}
    first = sweep(store_engine, store, **days)
    assert first == {"events": 0, "incidents": 0, "snapshots": 0, "alerts": 0, "held_events": 3}
    holds.release(held.id, "a")
    assert sweep(store_engine, store, **days) == {
        "events": 3,
        "incidents": 2,
        "snapshots": 0,
        "alerts": 3,
        "held_events": 0,
    }
    assert set(sweep(store_engine, store, **days).values()) == {0}
    assert [e.id for e in EventRepository(store_engine).list(limit=10).items] == ["e1h"]
