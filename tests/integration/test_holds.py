"""Legal holds on the real store: the sweep keeps what a hold covers, counts it, and sweeps it
once the hold is released; the routes place, list and release holds, audited, within the
caller's cameras; a held export cannot be deleted."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.actors.retention import RetentionSweeper
from sentinel.cli import main
from sentinel.client import AsyncSentinelClient
from sentinel.config import StorageSettings
from sentinel.domain.incidents import Incident
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.export_repo import ExportRepository, export_key
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import LocalObjectStore
from sentinel.store.repo import EventRepository
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.video.segments import segment_key
from tests.utils.api import api_app, api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.http_server import serve_app
from tests.utils.services import make_services

CAM = "yard"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICIES = {CAM: (1.0, 1.0), "dock": (1.0, 1.0)}  # one day of footage and of events


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def add_segment(engine: Engine, store: LocalObjectStore, cam: str, hours_ago: float) -> str:
    start = ago(hours_ago)
    info = SegmentInfo(
        path=Path("/nonexistent"),
        start=0.0,
        end=600.0,
        wall_start=start,
        wall_end=start + timedelta(minutes=10),
        size=1000,
        codec="h264",
        transcoded=False,
        frames=6000,
    )
    key = segment_key(cam, start)
    store.put(key, b"x" * 1000)
    return SegmentRepository(engine).add(cam, info, key, "continuous").id


def add_event(
    engine: Engine, event_id: str, cam: str, hours_ago: float, snapshot: str | None = None
) -> None:
    start = ago(hours_ago)
    EventRepository(engine).upsert(
        EventState(
            id=event_id,
            camera_id=cam,
            label="person",
            track_id=1,
            started_at=start,
            last_seen_at=start + timedelta(seconds=20),
            score=0.8,
            box=Box(10, 20, 50, 120),
            best_at=start + timedelta(seconds=1),
            ended_at=start + timedelta(seconds=20),
        ),
        snapshot,
    )


def add_incident(engine: Engine, incident_id: str, cam: str, hours_ago: float) -> None:
    start = ago(hours_ago)
    IncidentRepository(engine).upsert(
        Incident(
            id=incident_id,
            camera_id=cam,
            started_at=start,
            last_seen_at=start + timedelta(seconds=30),
            ended_at=start + timedelta(seconds=30),
            members=(),
            labels=("person",),
            zones=(),
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def sweeper(engine: Engine, store: LocalObjectStore) -> RetentionSweeper:
    return RetentionSweeper(engine, store, StorageSettings(), policies=lambda: POLICIES)


def test_a_held_range_keeps_its_segments_and_events_until_released(
    store_engine: Engine, store: LocalObjectStore
) -> None:
    segments = {h: add_segment(store_engine, store, CAM, h) for h in (50, 48, 47.5, 46, 30)}
    dock = add_segment(store_engine, store, "dock", 47.5)  # another camera: not held
    for name, h in (("e50", 50), ("e47", 47.4), ("e30", 30), ("e2", 2)):
        add_event(store_engine, name, CAM, h)
    add_incident(store_engine, "inc-47", CAM, 47.3)
    add_incident(store_engine, "inc-40", "dock", 40)
    holds = HoldRepository(store_engine)
    held = holds.create(
        kind="camera_range",
        camera_id=CAM,
        start_at=ago(48.05),  # the 48 h segment ends at 47:50 ago: it overlaps
        end_at=ago(47),
        reason="case 2026-118",
        created_by="admin",
    )
    by_incident = holds.create(
        kind="incident", camera_id="dock", target_id="inc-40", reason="insurance", created_by="x"
    )

    report = sweeper(store_engine, store).sweep(now=NOW)
    deleted = {d.segment_id for d in report.deleted}
    assert deleted == {segments[50], segments[46], segments[30], dock}
    repo = SegmentRepository(store_engine)
    for h in (48, 47.5):
        kept = repo.get(segments[h])
        assert kept is not None and store.exists(kept.object_key)
    assert (report.holds_active, report.held_segments, report.held_bytes) == (2, 2, 2000)
    events = EventRepository(store_engine)
    assert events.get("e47") is not None and events.get("e2") is not None
    assert events.get("e50") is None and events.get("e30") is None
    incidents = IncidentRepository(store_engine)
    assert incidents.get("inc-47") is not None and incidents.get("inc-40") is not None
    assert (report.events_expired, report.held_events) == (2, 1)
    assert (report.incidents_expired, report.held_incidents) == (0, 2)

    # A second sweep changes nothing and reports the same holds.
    again = sweeper(store_engine, store).sweep(now=NOW)
    assert again.deleted == [] and again.held_segments == 2 and again.held_incidents == 2

    assert holds.release(held.id, "admin") is not None
    assert holds.release(held.id, "admin") is None  # once
    after = sweeper(store_engine, store).sweep(now=NOW)
    assert {d.segment_id for d in after.deleted} == {segments[48], segments[47.5]}
    assert (after.events_expired, after.incidents_expired) == (1, 1)
    assert (after.holds_active, after.held_segments, after.held_incidents) == (1, 0, 1)
    assert incidents.get("inc-40") is not None  # still held by its incident hold
    holds.release(by_incident.id, "admin")
    assert sweeper(store_engine, store).sweep(now=NOW).incidents_expired == 1


def test_held_footage_never_fills_the_sweeps_page(
    store_engine: Engine, store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep reads the oldest segments a page at a time; held ones are left out of the
    query, so a page full of held footage never stops newer expired footage from going."""
    import sentinel.actors.retention as retention

    monkeypatch.setattr(retention, "_BATCH", 3)
    old = [add_segment(store_engine, store, CAM, 60 - i / 6) for i in range(5)]  # held
    newer = [add_segment(store_engine, store, CAM, 40 - i / 6) for i in range(4)]
    HoldRepository(store_engine).create(
        kind="camera_range", camera_id=CAM, start_at=ago(61), end_at=ago(58), reason="r",
        created_by="a",
    )  # fmt: skip
    report = sweeper(store_engine, store).sweep(now=NOW)
    assert {d.segment_id for d in report.deleted} == set(newer)
    assert report.held_segments == len(old)


@pytest.fixture
def api(store_engine: Engine, tmp_path: Path) -> Any:
    services = make_services(store_engine, tmp_path, exports=ExportRepository(store_engine))
    return services


def _h(user: AuthedUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def test_hold_routes_audited_and_camera_limited(api: Any, store_engine: Engine) -> None:
    services = api
    admin = add_user(services.security, "admin", Role.ADMIN)
    limited = add_user(services.security, "docker", Role.ADMIN, cameras=["dock"])
    operator = add_user(services.security, "op", Role.OPERATOR)
    add_incident(store_engine, "inc-1", CAM, 5)
    body = {
        "kind": "camera_range",
        "camera_id": CAM,
        "start_at": ago(10).isoformat(),
        "end_at": ago(5).isoformat(),
        "reason": "police request 17",
    }
    with api_client(services) as client:
        assert client.post("/api/v1/holds", json=body, headers=_h(operator)).status_code == 403
        assert client.post("/api/v1/holds", json=body, headers=_h(limited)).status_code == 404
        r = client.post("/api/v1/holds", json=body, headers=_h(admin))
        assert r.status_code == 201, r.text
        hold = r.json()
        assert hold["active"] and hold["camera_id"] == CAM and hold["created_by"] == admin.id
        r = client.post(
            "/api/v1/holds",
            json={"kind": "incident", "target_id": "inc-1", "reason": "claim"},
            headers=_h(admin),
        )
        assert r.status_code == 201 and r.json()["camera_id"] == CAM
        missing = {"kind": "incident", "target_id": "nope", "reason": "x"}
        assert client.post("/api/v1/holds", json=missing, headers=_h(admin)).status_code == 404
        listed = client.get("/api/v1/holds", headers=_h(admin)).json()["items"]
        assert len(listed) == 2
        assert client.get("/api/v1/holds", headers=_h(limited)).json()["items"] == []
        url = f"/api/v1/holds/{hold['id']}"
        assert client.get(url, headers=_h(limited)).status_code == 404
        assert client.delete(url, headers=_h(limited)).status_code == 404
        assert client.get(url, headers=_h(admin)).json()["reason"] == "police request 17"
        r = client.delete(url, headers=_h(admin))
        assert r.status_code == 200 and not r.json()["active"]
        assert r.json()["released_by"] == admin.id
        assert client.delete(url, headers=_h(admin)).status_code == 409
        active = client.get("/api/v1/holds", headers=_h(admin)).json()["items"]
        assert [h["kind"] for h in active] == ["incident"]
        everything = client.get("/api/v1/holds?active=false", headers=_h(admin)).json()
        assert len(everything["items"]) == 2
    entries = [
        r
        for r in AuditRepository(store_engine).iter_all()
        if r.action in ("POST /holds", "DELETE /holds/{hold_id}")
    ]
    placed = [e for e in entries if e.outcome == "success" and e.action.startswith("POST")]
    released = [e for e in entries if e.outcome == "success" and e.action.startswith("DELETE")]
    assert [e.detail["kind"] for e in placed] == ["camera_range", "incident"]
    assert placed[0].detail["hold_id"] == hold["id"]
    assert placed[0].detail["reason"] == "police request 17"
    assert [(e.detail["hold_id"], e.actor) for e in released] == [(hold["id"], admin.id)]
    assert any(e.outcome == "denied:403" for e in entries)


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"kind": "camera_range", "camera_id": CAM, "reason": "r"}, "needs start_at"),
    ({"kind": "camera_range", "start_at": "2026-01-01T00:00:00Z", "reason": "r"},
     "needs camera_id"),
    ({"kind": "camera_range", "camera_id": CAM, "start_at": "2026-01-02T00:00:00Z",
      "end_at": "2026-01-01T00:00:00Z", "reason": "r"}, "end_at must be after"),
    ({"kind": "camera_range", "camera_id": CAM, "start_at": "2026-01-01T00:00:00",
      "reason": "r"}, "timezone-aware"),
    ({"kind": "incident", "reason": "r"}, "needs target_id"),
    ({"kind": "export", "target_id": "e", "camera_id": CAM, "reason": "r"},
     "takes its camera"),
    ({"kind": "export", "target_id": "e", "reason": "   "}, "must not be blank"),
    ({"kind": "forever", "camera_id": CAM, "reason": "r"}, "camera_range"),
]  # fmt: skip


def test_bad_hold_bodies_are_422_with_the_reason(api: Any) -> None:
    admin = add_user(api.security, "admin", Role.ADMIN)
    with api_client(api) as client:
        for body, error in BAD_BODIES:
            r = client.post("/api/v1/holds", json=body, headers=_h(admin))
            assert r.status_code == 422 and error in r.text, (body, r.text)
    assert HoldRepository(api.engine).list(active_only=False) == []


def test_a_held_export_cannot_be_deleted(api: Any, store_engine: Engine) -> None:
    services = api
    admin = add_user(services.security, "admin", Role.ADMIN)
    exports = ExportRepository(store_engine)
    made = []
    for i, hours in enumerate((20, 3)):
        rec = exports.add(
            f"exp-{i}", CAM, f"clip {i}", ago(hours), ago(hours - 0.1), size=3, created_by=admin.id
        )
        assert rec.object_key == export_key(CAM, rec.id)
        services.objects.put(rec.object_key, b"mp4")
        made.append(rec)
    with api_client(services) as client:
        by_name = {"kind": "export", "target_id": "exp-0", "reason": "evidence"}
        hold = client.post("/api/v1/holds", json=by_name, headers=_h(admin)).json()
        by_range = {
            "kind": "camera_range",
            "camera_id": CAM,
            "start_at": ago(4).isoformat(),
            "reason": "open-ended",
        }
        assert client.post("/api/v1/holds", json=by_range, headers=_h(admin)).status_code == 201
        for rec in made:
            r = client.delete(f"/api/v1/exports/{rec.id}", headers=_h(admin))
            assert r.status_code == 409 and "legal hold" in r.json()["detail"]
            assert services.objects.exists(rec.object_key)
        assert client.delete(f"/api/v1/holds/{hold['id']}", headers=_h(admin)).status_code == 200
        assert client.delete("/api/v1/exports/exp-0", headers=_h(admin)).status_code == 204
        assert not services.objects.exists(made[0].object_key)
        assert client.delete("/api/v1/exports/exp-1", headers=_h(admin)).status_code == 409


def test_migration_0019_matches_the_model_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0015")
            conn.commit()
        assert not sa.inspect(engine).has_table("legal_holds")
        migrate(engine)
        with engine.connect() as conn:
            ours = {
                "include_object": lambda _o, name, kind, *_: (
                    kind != "table" or name == "legal_holds"
                )
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0015")
            conn.commit()
        assert not sa.inspect(engine).has_table("legal_holds")
        assert sa.inspect(engine).has_table("kb_documents")
    finally:
        engine.dispose()


def test_the_cli_places_lists_and_releases_holds(
    api: Any, store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sentinel holds` over a real HTTP server: place on a range and on an incident, list,
    release; the history keeps the released hold; a bad choice of target is a usage error."""
    services = api
    admin = add_user(services.security, "admin", Role.ADMIN)
    add_incident(store_engine, "inc-1", CAM, 5)
    monkeypatch.setenv("SENTINEL_TOKEN", admin.token)
    runner = CliRunner()
    with serve_app(api_app(services)) as url:

        def cli(*args: str) -> Any:
            return runner.invoke(main, ["holds", *args, "--url", url])

        placed = cli(
            "place", "--camera", CAM, "--start", "2026-06-01T08:00:00", "--reason", "case 7"
        )
        assert placed.exit_code == 0, placed.output
        assert "camera_range" in placed.output and "open" in placed.output
        on_incident = cli("place", "--incident", "inc-1", "--reason", "case 8")
        assert on_incident.exit_code == 0, on_incident.output
        both = cli("list", "--json")
        assert both.exit_code == 0, both.output
        listed = json.loads(both.output)
        assert {h["kind"] for h in listed} == {"camera_range", "incident"}
        ranged = next(h for h in listed if h["kind"] == "camera_range")
        assert ranged["start_at"].startswith("2026-06-01T08:00:00") and ranged["end_at"] is None
        released = cli("release", ranged["id"])
        assert released.exit_code == 0 and "released" in released.output, released.output
        assert [h["kind"] for h in json.loads(cli("list", "--json").output)] == ["incident"]
        history = cli("list", "--all")
        assert ranged["id"] in history.output and "released" in history.output
        again = cli("release", ranged["id"])
        assert again.exit_code != 0 and "409" in again.output
        both_targets = cli("place", "--camera", CAM, "--incident", "inc-1", "--reason", "x")
        assert both_targets.exit_code == 2 and "exactly one" in both_targets.output

        async def through_the_async_client() -> list[str]:
            async with AsyncSentinelClient(url, token=admin.token) as client:
                every = await client.holds(active=False)
                return [h.id for h in every]

        assert ranged["id"] in asyncio.run(through_the_async_client())
    assert len(HoldRepository(store_engine).list(active_only=False)) == 2
