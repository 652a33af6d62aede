"""Search through the HTTP API (SQLite and PostgreSQL, the real model and a real index).

The caller's camera scope is inside the vector query: a user limited to the dock gets k dock
results even while the gate's events rank higher for everyone else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.actors.retention import RetentionSweeper
from sentinel.api.deps import SearchServices, Services
from sentinel.config import StorageSettings
from sentinel.domain.incidents import Incident
from sentinel.domain.render import Overlay, encode_jpeg
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.models.embedder import TextEmbedder
from sentinel.search.index import APPEARANCE, VectorIndex
from sentinel.search.service import SearchService
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import snapshot_key
from sentinel.store.search_queue_repo import SearchQueue
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import make_services

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
RED, BLUE, GREEN, WHITE = (200, 30, 30), (30, 40, 190), (40, 170, 50), (245, 245, 245)
QUERY = "person in a red top walking left"


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, embedder: TextEmbedder) -> Services:
    services = make_services(store_engine, tmp_path)
    service = SearchService(
        VectorIndex(tmp_path / "search"),
        embedder.embed,
        events=services.events,
        incidents=IncidentRepository(store_engine),
        cameras=services.cameras,
        queue=SearchQueue(store_engine),
        alerts=AlertRepository(store_engine),
        objects=services.objects,
        appearance=VectorIndex(tmp_path / "search", collection=APPEARANCE),
    )
    services.search = SearchServices(service)
    return services


def _event(services: Services, event_id: str, camera_id: str, top: tuple[int, ...], n: int) -> None:
    frame = np.full((300, 400, 3), 128, dtype=np.uint8)
    frame[40:150, 180:220] = top
    frame[150:260, 180:220] = BLUE
    box = Box(180, 20, 220, 280)
    key = snapshot_key(camera_id, event_id)
    services.objects.put(key, encode_jpeg(frame, [Overlay(box, "person", "person")]))
    at = T0 + timedelta(minutes=n)
    services.events.upsert(
        EventState(
            id=event_id,
            camera_id=camera_id,
            label="person",
            track_id=n,
            started_at=at,
            last_seen_at=at + timedelta(seconds=30),
            score=0.9,
            box=box,
            best_at=at,
            ended_at=at + timedelta(seconds=30),
            path=[(350.0, 200.0), (40.0, 200.0)],
            zones=["car_park"],
        ),
        key,
    )


@pytest.fixture
def seeded(services: Services) -> Services:
    services.cameras.upsert("gate", {"id": "gate", "source": "/v/gate.mp4", "groups": ["front"]})
    services.cameras.upsert("dock", {"id": "dock", "source": "/v/dock.mp4", "groups": ["back"]})
    for i in range(8):
        _event(services, f"gate-{i}", "gate", RED, i)
    for i in range(4):
        _event(services, f"dock-{i}", "dock", GREEN if i % 2 else WHITE, i)
    assert services.search is not None
    assert services.search.service.drain() == 12
    return services


def _get(client: TestClient, user: AuthedUser, url: str, **params: str | int) -> dict[str, object]:
    resp = client.get(url, params=params, headers=user.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_scope_is_inside_the_vector_query(seeded: Services, client: TestClient) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    dock_user = add_user(seeded.security, "docker", Role.VIEWER, ["group:back"])
    everyone = _get(client, admin, "/api/v1/search", q=QUERY, limit=3)["items"]
    assert isinstance(everyone, list)
    assert [h["camera_id"] for h in everyone] == ["gate"] * 3  # the gate ranks higher
    assert everyone[0]["score"] > 0.3
    assert everyone[0]["snapshot_url"] == f"/api/v1/events/{everyone[0]['id']}/snapshot.jpg"
    assert "wearing red top" in everyone[0]["snippet"]
    snap = client.get(everyone[0]["snapshot_url"], headers=admin.headers)
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"

    limited = _get(client, dock_user, "/api/v1/search", q=QUERY, limit=3)
    items = limited["items"]
    assert isinstance(items, list)
    assert len(items) == 3  # k results of its own cameras, not 3 minus the hidden ones
    assert {h["camera_id"] for h in items} == {"dock"}
    assert limited["index_backlog"] == 0
    # Naming a hidden camera finds nothing (and does not confirm it exists).
    hidden = _get(client, dock_user, "/api/v1/search", q=QUERY, camera_id="gate")
    assert hidden["items"] == []
    # Filters: time bounds on the start, the label.
    late = _get(
        client, admin, "/api/v1/search", q=QUERY, since=(T0 + timedelta(minutes=6)).isoformat()
    )
    late_items = late["items"]
    assert isinstance(late_items, list)
    assert {h["id"] for h in late_items} == {"gate-6", "gate-7"}
    cars = _get(client, admin, "/api/v1/search", q=QUERY, label="car")
    assert cars["items"] == []


def test_similar_keeps_to_the_callers_cameras(seeded: Services, client: TestClient) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    dock_user = add_user(seeded.security, "docker", Role.VIEWER, ["dock"])
    like = _get(client, admin, "/api/v1/events/gate-0/similar", limit=5)["items"]
    assert isinstance(like, list)
    assert len(like) == 5 and "gate-0" not in {h["id"] for h in like}
    assert {h["camera_id"] for h in like} == {"gate"}
    # A hidden event is a 404 for the limited user; its own events give dock results only.
    assert client.get("/api/v1/events/gate-0/similar", headers=dock_user.headers).status_code == 404
    own = _get(client, dock_user, "/api/v1/events/dock-0/similar", limit=5)["items"]
    assert isinstance(own, list)
    assert len(own) == 3 and {h["camera_id"] for h in own} == {"dock"}


def test_similar_by_appearance(seeded: Services, client: TestClient) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    dock_user = add_user(seeded.security, "docker", Role.VIEWER, ["dock"])
    url = "/api/v1/events/gate-0/similar"
    like = _get(client, admin, url, by="appearance", limit=7)["items"]
    assert isinstance(like, list) and len(like) == 7
    assert [h["camera_id"] for h in like] == ["gate"] * 7  # the red tops: the gate's
    assert all(h["snapshot_url"] for h in like)
    own = _get(client, dock_user, "/api/v1/events/dock-1/similar", by="appearance")["items"]
    assert isinstance(own, list) and len(own) == 3
    assert {h["camera_id"] for h in own} == {"dock"}
    assert own[0]["id"] == "dock-3"  # the other green top
    none = _get(client, admin, url, by="appearance", kind="incident")
    assert none["items"] == []
    bad = client.get(url, params={"by": "smell"}, headers=admin.headers)
    assert bad.status_code == 422


@pytest.mark.parametrize("q", ["", "   ", "é" * 2049, "x" * 4097])
def test_empty_or_oversized_queries_are_422(seeded: Services, client: TestClient, q: str) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    resp = client.get("/api/v1/search", params={"q": q}, headers=admin.headers)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == ["query", "q"]


def test_missing_query_and_bad_bounds(seeded: Services, client: TestClient) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    assert client.get("/api/v1/search", headers=admin.headers).status_code == 422
    resp = client.get(
        "/api/v1/search",
        params={"q": "x", "since": T0.isoformat(), "until": (T0 - timedelta(1)).isoformat()},
        headers=admin.headers,
    )
    assert resp.status_code == 400
    assert client.get("/api/v1/search", params={"q": "x"}).status_code == 401


def test_the_index_lag_is_reported(services: Services, client: TestClient) -> None:
    admin = add_user(services.security, "root", Role.ADMIN)
    _event(services, "late-1", "gate", RED, 1)
    _event(services, "late-2", "gate", RED, 2)
    health = client.get("/health").json()
    assert health["search_backlog"] == 2
    metrics = client.get("/metrics", headers=admin.headers).text
    assert "sentinel_search_backlog 2.0" in metrics
    # Search answers from what is indexed while the index is behind.
    behind = _get(client, admin, "/api/v1/search", q=QUERY)
    assert behind["items"] == [] and behind["index_backlog"] == 2
    assert services.search is not None
    services.search.service.drain()
    assert client.get("/health").json()["search_backlog"] == 0
    assert "sentinel_search_lag_seconds 0.0" in client.get("/metrics", headers=admin.headers).text


def test_swept_events_leave_the_index(
    seeded: Services, client: TestClient, store_engine: Engine
) -> None:
    """Retention deletes the rows and snapshots of events past their camera's event
    retention; their removal is queued with the row's deletion, and once the indexer has
    run they are gone from search, "more like this" and the appearance index."""
    admin = add_user(seeded.security, "root", Role.ADMIN)
    assert seeded.search is not None
    service = seeded.search.service
    sweeper = RetentionSweeper(
        store_engine,
        seeded.objects,
        StorageSettings(),
        policies=lambda: {"gate": (None, 1.0), "dock": (None, None)},
    )
    # gate-0..2 ended more than a day before; gate-3 ended 30 s after the cut-off.
    report = sweeper.sweep(now=T0 + timedelta(days=1, minutes=3))
    assert report.events_expired == 3
    swept = {"gate-0", "gate-1", "gate-2"}
    for event_id in swept:
        assert seeded.events.get(event_id) is None
        assert not seeded.objects.exists(snapshot_key("gate", event_id))
        assert service.queue.status(event_id) == ("pending", "delete", 0)
    assert seeded.events.get("gate-3") is not None
    # Before the indexer runs, the index still holds them; the queue's backlog says so.
    assert swept <= set(service.index.ids())
    assert service.drain() == 3
    assert not swept & set(service.index.ids())
    assert service.appearance is not None
    assert not swept & set(service.appearance.ids())
    for event_id in swept:
        assert service.queue.status(event_id) == ("done", "delete", 1)
    found = _get(client, admin, "/api/v1/search", q=QUERY, limit=20)["items"]
    assert isinstance(found, list)
    assert len(found) == 9 and not swept & {h["id"] for h in found}
    like = _get(client, admin, "/api/v1/events/gate-3/similar", by="appearance", limit=20)
    assert isinstance(like["items"], list) and not swept & {h["id"] for h in like["items"]}
    assert client.get("/api/v1/events/gate-0/similar", headers=admin.headers).status_code == 404
    # A second sweep and a replayed delete are no-ops.
    assert sweeper.sweep(now=T0 + timedelta(days=1, minutes=3)).events_expired == 0
    service.queue.enqueue("gate-0", "event", "delete")
    assert service.drain() == 1 and len(service.index.ids()) == 9


def _incident(
    services: Services, incident_id: str, camera_id: str, members: tuple[str, ...]
) -> None:
    at = T0 + timedelta(minutes=1)
    IncidentRepository(services.engine).upsert(
        Incident(
            id=incident_id,
            camera_id=camera_id,
            started_at=at,
            last_seen_at=at + timedelta(seconds=30),
            ended_at=at + timedelta(seconds=30),
            members=members,
            labels=("person",),
            zones=("car_park",),
        )
    )


def test_similar_to_an_incident_keeps_to_the_callers_cameras(
    seeded: Services, client: TestClient
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    dock_user = add_user(seeded.security, "docker", Role.VIEWER, ["dock"])
    _incident(seeded, "inc-gate", "gate", ("gate-0", "gate-1"))
    _incident(seeded, "inc-dock", "dock", ("dock-0", "dock-1"))
    assert seeded.search is not None and seeded.search.service.drain() == 2
    url = "/api/v1/incidents/inc-gate/similar"
    like = _get(client, admin, url, limit=5)["items"]
    assert isinstance(like, list) and len(like) == 5
    assert "inc-gate" not in {h["id"] for h in like}
    assert like[0]["id"] == "inc-dock"  # the other incident reads most alike
    only = _get(client, admin, url, kind="event", camera_id="gate", limit=3)["items"]
    assert isinstance(only, list) and len(only) == 3
    assert {(h["kind"], h["camera_id"]) for h in only} == {("event", "gate")}
    # A hidden incident is a 404 (like a missing one); the limited user's own incident
    # gets k results of its own cameras although the gate's rank as high.
    assert client.get(url, headers=dock_user.headers).status_code == 404
    missing = client.get("/api/v1/incidents/nope/similar", headers=admin.headers)
    assert missing.status_code == 404
    own = _get(client, dock_user, "/api/v1/incidents/inc-dock/similar", limit=4)["items"]
    assert isinstance(own, list) and len(own) == 4
    assert {h["camera_id"] for h in own} == {"dock"}
    assert client.get(url, params={"limit": 0}, headers=admin.headers).status_code == 422
    assert client.get(url).status_code == 401
    # An incident not indexed yet is described and embedded on the spot.
    _incident(seeded, "inc-new", "gate", ("gate-2",))
    fresh = _get(client, admin, "/api/v1/incidents/inc-new/similar", limit=3)["items"]
    assert isinstance(fresh, list) and len(fresh) == 3
    assert "inc-new" not in {h["id"] for h in fresh}
