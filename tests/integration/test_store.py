"""The store on real databases: every test runs on SQLite and on PostgreSQL (no Ray here)."""

from __future__ import annotations

import base64
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.domain.types import Box, EventState, event_id
from sentinel.store.db import alembic_config, make_engine, migrate, ping, sqlite_url
from sentinel.store.repo import (
    MAX_PAGE_SIZE,
    CameraRepository,
    EventPage,
    EventRepository,
    InvalidCursor,
    StoredEvent,
)
from sentinel.store.tables import CAMERAS, EVENTS

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_state(
    n: int = 1,
    *,
    camera_id: str = "front_door",
    label: str = "person",
    start: float = 0.0,
    last_seen: float = 1.0,
    ended: float | None = None,
    score: float = 0.8,
) -> EventState:
    return EventState(
        id=event_id(camera_id, "epoch-1", n),
        camera_id=camera_id,
        label=label,
        track_id=n,
        started_at=at(start),
        last_seen_at=at(last_seen),
        score=score,
        box=Box(10.0, 20.0, 110.5, 220.25),
        best_at=at(start),
        ended_at=None if ended is None else at(ended),
        hits=3,
        path=[(60.0, 120.0), (61.5, 121.0)],
        zones=["porch", "door"],
    )


def stored(repo: EventRepository, state: EventState) -> StoredEvent:
    event = repo.get(state.id)
    assert event is not None
    return event


# --- migrations -------------------------------------------------------------------------------


def test_migrate_twice_is_a_noop_and_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        EventRepository(engine).upsert(make_state())
        migrate(engine)
        migrate(db_url)  # by URL too
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (
                ScriptDirectory.from_config(alembic_config()).get_current_head(),
            )
            diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        ours = {"cameras", "events"}
        assert [d for d in diffs if _diff_table(d) in ours] == []
        assert EventRepository(engine).count() == 1
        ping(engine)
    finally:
        engine.dispose()


def _diff_table(diff: object) -> str | None:
    # compare_metadata yields ("op", obj, ...) tuples, or lists of them for column changes.
    first = diff[0] if isinstance(diff, list) else diff
    assert isinstance(first, tuple)
    for part in first[1:]:
        if isinstance(part, sa.Table):
            return part.name
        table = getattr(part, "table", None)
        if isinstance(table, sa.Table):
            return table.name
        if isinstance(part, str) and part in {"cameras", "events"}:
            return part
    return None


def test_concurrent_migrations_do_not_crash(db_url: str) -> None:
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in [pool.submit(migrate, db_url) for _ in range(4)]:
            result.result(timeout=120)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (
                ScriptDirectory.from_config(alembic_config()).get_current_head(),
            )
    finally:
        engine.dispose()


def test_make_engine_sqlite_creates_folder_and_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "a" / "b" / "x.db"))
    try:
        ping(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert (tmp_path / "a" / "b" / "x.db").exists()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_make_engine_rejects_other_databases(url: str) -> None:
    with pytest.raises(ValueError):
        make_engine(url)


# --- upsert -----------------------------------------------------------------------------------


def test_upsert_is_idempotent(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    state = make_state()
    repo.upsert(state, snapshot_key="snapshots/front_door/a.jpg")
    first = stored(repo, state)
    repo.upsert(state, snapshot_key="snapshots/front_door/a.jpg")
    assert repo.count() == 1
    assert replace(stored(repo, state), updated_at=first.updated_at) == first
    assert first.to_state() == state
    assert first.snapshot_key == "snapshots/front_door/a.jpg"


def test_stale_update_is_ignored(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    newer = make_state(last_seen=10.0, score=0.9)
    repo.upsert(newer)
    repo.upsert(make_state(last_seen=5.0, score=0.5))
    assert stored(repo, newer).to_state() == newer
    newest = make_state(last_seen=11.0, score=0.95)
    repo.upsert(newest)
    assert stored(repo, newer).to_state() == newest


def test_snapshot_key_is_never_nulled(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    repo.upsert(make_state(last_seen=1.0), snapshot_key="snapshots/c/1.jpg")
    repo.upsert(make_state(last_seen=2.0, score=0.99))
    event = stored(repo, make_state())
    assert (event.snapshot_key, event.score) == ("snapshots/c/1.jpg", 0.99)
    repo.upsert(make_state(last_seen=3.0), snapshot_key="snapshots/c/2.jpg")
    assert stored(repo, make_state()).snapshot_key == "snapshots/c/2.jpg"


def test_close_then_reopen(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    opened = make_state(last_seen=5.0)
    closed = make_state(last_seen=5.0, ended=5.0)
    repo.upsert(opened)
    repo.upsert(closed)  # closing at the same last_seen_at wins
    assert stored(repo, opened).ended_at == at(5.0)
    repo.upsert(opened)  # a replayed pre-close state does not reopen it
    assert stored(repo, opened).ended_at == at(5.0)
    assert repo.open_events("front_door") == []
    reopened = make_state(last_seen=8.0)
    repo.upsert(reopened)  # a newer sighting reopens it
    assert stored(repo, opened).to_state() == reopened
    repo.upsert(closed)  # and the old close, replayed, is stale
    assert stored(repo, opened).ended_at is None
    assert [e.id for e in repo.open_events("front_door")] == [opened.id]


def test_naive_datetimes_are_refused(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    naive = replace(make_state(), last_seen_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        repo.upsert(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        repo.list(since=datetime(2025, 1, 1))
    assert repo.count() == 0


def test_datetimes_round_trip_as_utc(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    india = timezone(timedelta(hours=5, minutes=30))
    state = make_state(ended=2.0)
    state.started_at = datetime(2025, 6, 1, 17, 30, 0, 654321, tzinfo=india)
    repo.upsert(state)
    event = stored(repo, state)
    assert event.started_at == datetime(2025, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
    for value in (event.started_at, event.ended_at, event.last_seen_at, event.best_at):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
    assert event.updated_at.tzinfo is not None
    with store_engine.connect() as conn:
        (raw,) = conn.execute(sa.select(EVENTS.c.last_seen_at)).one()
    assert raw == at(1.0)


# --- queries ----------------------------------------------------------------------------------


def test_open_events_and_count(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    repo.upsert(make_state(1, start=0.0))
    repo.upsert(make_state(2, start=1.0, last_seen=2.0, ended=2.0))
    repo.upsert(make_state(3, start=2.0, label="car"))
    repo.upsert(make_state(4, camera_id="back_door"))
    assert [e.track_id for e in repo.open_events("front_door")] == [1, 3]
    assert repo.open_events("nowhere") == []
    assert repo.count() == 4
    assert repo.count(camera_id="front_door") == 3
    assert repo.count(label="car") == 1
    assert repo.count(camera_id="back_door", label="car") == 0


def test_list_filters(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    repo.upsert(make_state(1, start=0.0, last_seen=10.0, ended=10.0))  # [0, 10]
    repo.upsert(make_state(2, start=20.0, last_seen=30.0, ended=30.0, label="car"))  # [20, 30]
    repo.upsert(make_state(3, start=40.0, last_seen=41.0))  # [40, open)
    repo.upsert(make_state(4, camera_id="back_door", start=5.0, last_seen=6.0))  # [5, open)

    def tracks(page: EventPage) -> list[tuple[str, int]]:
        return [(e.camera_id, e.track_id) for e in page.items]

    front = [("front_door", 3), ("front_door", 2), ("front_door", 1)]
    assert tracks(repo.list()) == [front[0], front[1], ("back_door", 4), front[2]]
    assert tracks(repo.list(camera_id="front_door")) == front
    assert tracks(repo.list(camera_ids=["front_door"])) == front
    assert tracks(repo.list(camera_ids={"back_door", "side"})) == [("back_door", 4)]
    assert tracks(repo.list(camera_ids=[])) == []
    assert tracks(repo.list(camera_id="front_door", camera_ids=["back_door"])) == []
    assert tracks(repo.list(label="car")) == [("front_door", 2)]
    assert tracks(repo.list(camera_id="front_door", since=at(10.0))) == front  # touching counts
    assert tracks(repo.list(camera_id="front_door", since=at(10.5))) == front[:2]
    assert tracks(repo.list(camera_id="front_door", since=at(35.0))) == front[:1]  # open event
    assert tracks(repo.list(camera_id="front_door", since=at(1e6))) == front[:1]  # open is ongoing
    assert tracks(repo.list(camera_id="front_door", until=at(19.0))) == front[2:]
    assert tracks(repo.list(camera_id="front_door", since=at(15.0), until=at(25.0))) == front[1:2]
    assert tracks(repo.list(since=at(11.0), until=at(19.0))) == [("back_door", 4)]


def test_pagination_returns_every_event_once_in_order(store_engine: Engine) -> None:
    repo = EventRepository(store_engine)
    states = [
        make_state(n, camera_id=("a", "b")[n % 2], start=float(n // 3), last_seen=n // 3 + 1.0)
        for n in range(250)
    ]  # groups of three share a started_at: the id breaks the ties
    for state in states:
        repo.upsert(state)
    expected = [s.id for s in sorted(states, key=lambda s: (s.started_at, s.id), reverse=True)]
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        page = repo.list(cursor=cursor, limit=100)
        seen += [e.id for e in page.items]
        sizes.append(len(page.items))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [100, 100, 50]
    assert seen == expected
    # A cursor works with filters too, and an exactly-full last page has no next cursor.
    scoped: list[str] = []
    cursor = None
    for _ in range(5):  # 125 events of camera "a"
        page = repo.list(camera_id="a", cursor=cursor, limit=25)
        scoped += [e.id for e in page.items]
        cursor = page.next_cursor
    assert cursor is None
    assert scoped == [i for i in expected if i in {s.id for s in states if s.camera_id == "a"}]


def _b64(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!not-base64!!!",
        _b64(b"no separator"),
        _b64(b"2025-01-01T00:00:00+00:00|"),
        _b64(b"not a date|some-id"),
        _b64(b"2025-01-01T00:00:00|naive-id"),
        _b64(b"\xff\xfe|x"),
    ],
)
def test_malformed_cursor_is_rejected(store_engine: Engine, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        EventRepository(store_engine).list(cursor=cursor)


@pytest.mark.parametrize(
    ("limit", "ok"), [(0, False), (-1, False), (1, True), (MAX_PAGE_SIZE, True), (1001, False)]
)
def test_limit_bounds(store_engine: Engine, limit: int, ok: bool) -> None:
    repo = EventRepository(store_engine)
    repo.upsert(make_state(1))
    repo.upsert(make_state(2))
    if ok:
        assert len(repo.list(limit=limit).items) == min(limit, 2)
    else:
        with pytest.raises(ValueError, match="limit"):
            repo.list(limit=limit)


# --- cameras ----------------------------------------------------------------------------------


def test_camera_repository_crud(store_engine: Engine) -> None:
    times = iter([at(0.0), at(60.0)])
    repo = CameraRepository(store_engine, clock=lambda: next(times))
    assert repo.get("front_door") is None
    assert repo.list() == []
    config = {"url": "rtsp://cam/1", "fps": 5, "zones": [{"name": "door", "points": [[0, 0]]}]}
    repo.upsert("front_door", config)
    assert repo.get("front_door") == config
    repo.upsert("front_door", {**config, "fps": 10})
    assert repo.get("front_door") == {**config, "fps": 10}
    with store_engine.connect() as conn:
        row = conn.execute(sa.select(CAMERAS).where(CAMERAS.c.id == "front_door")).one()
    assert (row.created_at, row.updated_at) == (at(0.0), at(60.0))
    repo_b = CameraRepository(store_engine)
    repo_b.upsert("back_door", {})
    repo_b.upsert("a_cam", {"x": 1})
    assert [camera for camera, _ in repo.list()] == ["a_cam", "back_door", "front_door"]
    assert repo.delete("back_door") is True
    assert repo.delete("back_door") is False
    assert repo.get("back_door") is None
    with pytest.raises(ValueError):
        repo.upsert("", {})
    with pytest.raises(TypeError):
        repo.upsert("bad", {"when": datetime.now(UTC)})
    assert [camera for camera, _ in repo.list()] == ["a_cam", "front_door"]


def test_camera_scene_edits_win_over_the_config_until_dropped(store_engine: Engine) -> None:
    repo = CameraRepository(store_engine)
    config = {"id": "gate", "source": "/v.mp4", "zones": [{"name": "file"}], "lines": []}
    repo.upsert("gate", config)
    assert not repo.scene_edited("gate")
    scene = {"zones": [{"name": "drawn"}], "object_masks": [{"polygon": [[0, 0]]}]}
    assert repo.set_scene("gate", scene)
    assert repo.scene_edited("gate")
    assert repo.get("gate") == {**config, **scene}
    assert repo.list() == [("gate", {**config, **scene})]
    assert repo.get_own("gate") == config
    repo.upsert("gate", {**config, "detect_fps": 2})  # the config file, written again
    assert repo.get("gate") == {**config, "detect_fps": 2, **scene}
    assert repo.set_scene("gate", None)
    assert repo.get("gate") == {**config, "detect_fps": 2} and not repo.scene_edited("gate")
    assert not repo.set_scene("attic", scene) and repo.get_own("attic") is None
    with pytest.raises(TypeError):
        repo.set_scene("gate", [])  # type: ignore[arg-type]
