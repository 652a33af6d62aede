"""Search end to end without Ray: closed events are queued, indexed with their crop colours
from the snapshots, found by words within the caller's scope, and removed once gone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sentinel.domain.incidents import Incident
from sentinel.domain.render import Overlay, encode_jpeg
from sentinel.domain.types import Box, EventState
from sentinel.models.embedder import TextEmbedder
from sentinel.search.index import APPEARANCE, SearchFilter, VectorIndex
from sentinel.search.service import SearchService
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import LocalObjectStore, snapshot_key
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.store.search_queue_repo import SearchQueue
from sentinel.store.tables import EVENTS

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # a Tuesday afternoon
RED, BLUE, WHITE, GREEN = (200, 30, 30), (30, 40, 190), (245, 245, 245), (40, 170, 50)


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


@dataclass
class World:
    service: SearchService
    events: EventRepository
    queue: SearchQueue
    objects: LocalObjectStore
    engine: Engine
    service_path: Path


@pytest.fixture
def world(store_engine: Engine, tmp_path: Path, embedder: TextEmbedder) -> Iterator[World]:
    cameras = CameraRepository(store_engine)
    cameras.upsert("gate", {"name": "Front gate", "description": "The car park and the gate."})
    cameras.upsert("dock", {"name": "Loading dock", "description": "Trucks unload here."})
    events = EventRepository(store_engine)
    queue = SearchQueue(store_engine)
    objects = LocalObjectStore(tmp_path / "objects")
    service = SearchService(
        VectorIndex(tmp_path / "search"),
        embedder.embed,
        events=events,
        incidents=IncidentRepository(store_engine),
        cameras=cameras,
        queue=queue,
        alerts=AlertRepository(store_engine),
        objects=objects,
    )
    yield World(service, events, queue, objects, store_engine, tmp_path)


def person_frame(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    frame = np.full((300, 400, 3), 128, dtype=np.uint8)
    frame[40:150, 180:220] = top
    frame[150:260, 180:220] = bottom
    return frame


def store_event(
    w: World,
    event_id: str,
    *,
    camera_id: str = "gate",
    label: str = "person",
    frame: np.ndarray | None = None,
    box: Box = Box(180, 20, 220, 280),
    path: tuple[tuple[float, float], ...] = ((350.0, 200.0), (50.0, 210.0)),
    start: float = 0.0,
    zones: tuple[str, ...] = ("car_park",),
) -> None:
    key = None
    if frame is not None:
        key = snapshot_key(camera_id, event_id)
        w.objects.put(key, encode_jpeg(frame, [Overlay(box, label, label)]), "image/jpeg")
    at = T0 + timedelta(seconds=start)
    w.events.upsert(
        EventState(
            id=event_id,
            camera_id=camera_id,
            label=label,
            track_id=1,
            started_at=at,
            last_seen_at=at + timedelta(seconds=60),
            score=0.9,
            box=box,
            best_at=at,
            ended_at=at + timedelta(seconds=60),
            path=list(path),
            zones=list(zones),
        ),
        key,
    )


def test_closed_events_are_indexed_with_crop_colours_and_found_by_words(w: World) -> None:
    store_event(w, "red-left", frame=person_frame(RED, BLUE))
    store_event(
        w, "green-right", frame=person_frame(GREEN, WHITE), path=((50.0, 200.0), (350.0, 200.0))
    )
    car = np.full((300, 400, 3), 60, dtype=np.uint8)
    car[100:250, 50:350] = WHITE
    store_event(
        w,
        "white-truck",
        camera_id="dock",
        label="truck",
        frame=car,
        box=Box(50, 100, 350, 250),
        path=((200.0, 200.0), (201.0, 200.0)),
        zones=("bay",),
    )
    assert w.queue.backlog() == 3
    assert w.service.drain() == 3
    assert w.queue.backlog() == 0
    assert w.service.index.count() == 3
    hit = w.service.index.get("red-left")
    assert hit is not None
    assert "wearing red top, blue bottom" in hit.text
    assert "walking left" in hit.text
    assert "seen by camera Front gate" in hit.text

    def top(query: str, **kw: object) -> str:
        return w.service.search(query, SearchFilter(**kw), 3)[0].id  # type: ignore[arg-type]

    assert top("person in a red shirt walking left near the car park") == "red-left"
    assert top("someone in green going right") == "green-right"
    assert top("white truck at the loading dock") == "white-truck"
    # Filters are inside the query: a label or camera limits what can rank at all.
    assert {h.id for h in w.service.search("red", SearchFilter(label="truck"), 3)} == {
        "white-truck"
    }
    only_dock = w.service.search("person in red", SearchFilter(cameras=frozenset({"dock"})), 3)
    assert [h.id for h in only_dock] == ["white-truck"]
    assert w.service.search("red", SearchFilter(cameras=frozenset()), 3) == []
    later = SearchFilter(since=T0 + timedelta(hours=1))
    assert w.service.search("person", later, 3) == []
    with pytest.raises(ValueError):
        w.service.search("   ", SearchFilter(), 3)
    with pytest.raises(ValueError):
        w.service.search("x" * 4097, SearchFilter(), 3)


@pytest.fixture
def w(world: World) -> World:
    return world


def test_a_limited_scope_still_gets_k_results_of_its_own_cameras(w: World) -> None:
    # Ten red people on the gate, closer to the query than anything on the dock.
    for i in range(10):
        store_event(w, f"gate-{i}", frame=person_frame(RED, BLUE), start=i)
    for i in range(4):
        store_event(
            w,
            f"dock-{i}",
            camera_id="dock",
            frame=person_frame(GREEN, WHITE),
            start=i,
            zones=("bay",),
        )
    w.service.drain()
    everyone = w.service.search("person in a red top", SearchFilter(), 5)
    assert [h.metadata["camera_id"] for h in everyone] == ["gate"] * 5
    dock_only = w.service.search(
        "person in a red top", SearchFilter(cameras=frozenset({"dock"})), 3
    )
    assert len(dock_only) == 3
    assert all(h.metadata["camera_id"] == "dock" for h in dock_only)
    similar = w.service.similar("gate-0", SearchFilter(cameras=frozenset({"dock"})), 3)
    assert similar is not None and len(similar) == 3
    assert all(h.metadata["camera_id"] == "dock" for h in similar)
    near = w.service.similar("gate-0", SearchFilter(), 3)
    assert near is not None and "gate-0" not in [h.id for h in near]
    assert all(h.metadata["camera_id"] == "gate" for h in near)
    assert w.service.similar("nope", SearchFilter(), 3) is None


def test_reindexing_is_idempotent_and_gone_items_leave_the_index(w: World) -> None:
    store_event(w, "a", frame=person_frame(RED, BLUE))
    store_event(w, "b", frame=person_frame(GREEN, BLUE))
    w.service.drain()
    w.queue.enqueue("a")
    w.service.drain()
    assert w.service.index.count() == 2
    # The row goes (retention, a deletion): the queued delete or a re-index removes it.
    with w.engine.begin() as conn:
        conn.execute(sa.delete(EVENTS).where(EVENTS.c.id == "a"))
    w.queue.enqueue("a", "event", "delete")
    w.service.drain()
    assert w.service.index.ids() == ["b"]
    # Backfill indexes what is stored and prunes what is not.
    with w.engine.begin() as conn:
        conn.execute(sa.delete(EVENTS).where(EVENTS.c.id == "b"))
    store_event(w, "c", frame=person_frame(WHITE, BLUE))
    report = w.service.backfill()
    assert (report.upserted, report.deleted) == (1, 1)
    assert w.service.index.ids() == ["c"]


def test_incidents_are_indexed_too(w: World) -> None:
    store_event(w, "m1")
    incidents = IncidentRepository(w.engine)
    incidents.upsert(
        Incident(
            id="inc-1",
            camera_id="gate",
            started_at=T0,
            last_seen_at=T0 + timedelta(minutes=5),
            ended_at=T0 + timedelta(minutes=5),
            members=("m1",),
            labels=("person",),
            zones=("car_park",),
        )
    )
    w.service.drain()
    hits = w.service.search("incident in the car park", SearchFilter(kind="incident"), 5)
    assert [h.id for h in hits] == ["inc-1"]
    assert hits[0].metadata["kind"] == "incident"


def test_a_failed_embedding_hands_the_batch_back(w: World) -> None:
    store_event(w, "a", frame=person_frame(RED, BLUE))
    leases = w.queue.lease(10, 30.0)
    batch = w.service.prepare(leases)
    assert batch.texts and "wearing red top" in batch.texts[0]
    report = w.service.commit(batch, RuntimeError("embedder down"))
    assert (report.upserted, report.failed) == (0, 1)
    assert w.service.index.count() == 0
    status = w.queue.status("a")
    assert status is not None and status[0] == "leased"  # retried once the lease expires
    assert w.service.drain() == 0  # not claimable before that
    assert w.service.lag()["backlog"] == 1


def test_similar_by_appearance_ranks_the_same_colours_first(w: World) -> None:
    w.service.appearance = VectorIndex(w.service_path / "search", collection=APPEARANCE)
    for i in range(3):
        store_event(w, f"red-{i}", frame=person_frame(RED, BLUE), start=i)
        store_event(w, f"green-{i}", frame=person_frame(GREEN, WHITE), start=i)
    store_event(w, "no-snapshot")
    w.service.drain()
    assert w.service.appearance.count() == 6  # the event without a snapshot has no looks
    like = w.service.similar_looking("red-0", SearchFilter(), 3)
    assert like is not None
    assert [h.id for h in like[:2]] == sorted(h.id for h in like[:2]) and {
        h.id for h in like[:2]
    } == {"red-1", "red-2"}
    assert like[0].score > like[2].score
    assert w.service.similar_looking("no-snapshot", SearchFilter(), 3) is None
    scoped = w.service.similar_looking("red-0", SearchFilter(cameras=frozenset({"dock"})), 3)
    assert scoped == []
    with w.engine.begin() as conn:
        conn.execute(sa.delete(EVENTS).where(EVENTS.c.id == "red-1"))
    w.queue.enqueue("red-1", "event", "delete")
    w.service.drain()
    assert "red-1" not in w.service.appearance.ids()
