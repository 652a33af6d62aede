"""The HTTP API over real repositories (SQLite and PostgreSQL) with a fake camera control."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.domain.render import decode_jpeg, encode_jpeg
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.store.objects import snapshot_key
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import FakeControl, ReadyDetector, make_services

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, control: FakeControl) -> Services:
    return make_services(store_engine, tmp_path, control=control, auth={"metrics_public": True})


@pytest.fixture
def client_headers(admin: AuthedUser) -> dict[str, str]:
    return admin.headers


def _event(i: int, camera: str = "a", label: str = "person", ended: bool = True) -> EventState:
    start = T0 + timedelta(seconds=10 * i)
    return EventState(
        id=f"00000000-0000-0000-0000-{i:012d}",
        camera_id=camera,
        label=label,
        track_id=i,
        started_at=start,
        last_seen_at=start + timedelta(seconds=5),
        score=0.5 + (i % 5) / 10,
        box=Box(10, 20, 50, 120),
        best_at=start + timedelta(seconds=1),
        ended_at=start + timedelta(seconds=5) if ended else None,
    )


def test_list_filters_and_paginates(client: TestClient, services: Services) -> None:
    for i in range(30):
        services.events.upsert(_event(i, camera="a" if i % 2 else "b", label="person"))
    for i in range(30, 35):
        services.events.upsert(_event(i, camera="a", label="car"))
    r = client.get("/api/v1/events", params={"label": "person", "camera_id": "a", "limit": 4})
    assert r.status_code == 200
    seen: list[str] = []
    body = r.json()
    while True:
        assert all(e["label"] == "person" and e["camera_id"] == "a" for e in body["items"])
        seen += [e["id"] for e in body["items"]]
        if body["next_cursor"] is None:
            break
        body = client.get(
            "/api/v1/events",
            params={"label": "person", "camera_id": "a", "limit": 4, "cursor": body["next_cursor"]},
        ).json()
    assert len(seen) == 15 and len(set(seen)) == 15
    starts = [client.get(f"/api/v1/events/{i}").json()["started_at"] for i in seen]
    assert starts == sorted(starts, reverse=True)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 501}, 422),
        ({"limit": 0}, 422),
        ({"limit": 500}, 200),
        ({"cursor": "not-a-cursor"}, 400),
        ({"since": "yesterday"}, 422),
        ({"since": "2026-11-27T00:00:00Z", "until": "2026-11-26T00:00:00Z"}, 400),
    ],
)
def test_list_rejects_bad_queries(client: TestClient, params: dict[str, Any], status: int) -> None:
    r = client.get("/api/v1/events", params=params)
    assert r.status_code == status, r.text
    assert "detail" in r.json() or status == 200


def test_since_until_window(client: TestClient, services: Services) -> None:
    for i in range(10):
        services.events.upsert(_event(i))
    r = client.get(
        "/api/v1/events",
        params={
            "since": (T0 + timedelta(seconds=30)).isoformat(),
            "until": (T0 + timedelta(seconds=60)).isoformat(),
        },
    )
    ids = {e["track_id"] for e in r.json()["items"]}
    # events 3..6 start inside the window; event 2 ends at 25 s, before it
    assert {3, 4, 5, 6} <= ids and 2 not in ids and 7 not in ids


def test_event_fields_and_snapshot(client: TestClient, services: Services) -> None:
    ev = replace(_event(1, ended=False), zones=["gate", "path"])
    key = snapshot_key("a", ev.id)
    services.objects.put(key, b"\xff\xd8jpeg", "image/jpeg")
    services.events.upsert(ev, key)
    body = client.get(f"/api/v1/events/{ev.id}").json()
    for field in (
        "id",
        "camera_id",
        "label",
        "score",
        "track_id",
        "started_at",
        "ended_at",
        "box",
        "snapshot_url",
    ):
        assert field in body
    assert body["ended_at"] is None and body["box"] == [10, 20, 50, 120]
    assert body["zones"] == ["gate", "path"]
    snap = client.get(body["snapshot_url"])
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    assert snap.content == b"\xff\xd8jpeg"
    assert snap.headers["accept-ranges"] == "bytes"
    part = client.get(body["snapshot_url"], headers={"Range": "bytes=1-3"})
    assert part.status_code == 206 and part.content == b"\xd8jp"
    assert part.headers["content-range"] == "bytes 1-3/6"
    tail = client.get(body["snapshot_url"], headers={"Range": "bytes=-2"})
    assert tail.status_code == 206 and tail.content == b"eg"
    beyond = client.get(body["snapshot_url"], headers={"Range": "bytes=99-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */6"


def test_missing_event_and_snapshot(client: TestClient, services: Services) -> None:
    assert client.get("/api/v1/events/nope").status_code == 404
    ev = _event(2)
    services.events.upsert(ev)
    r = client.get(f"/api/v1/events/{ev.id}/snapshot.jpg")
    assert r.status_code == 404 and "snapshot" in r.json()["detail"]


def test_camera_lifecycle(client: TestClient, control: FakeControl, services: Services) -> None:
    body = {"id": "front", "source": "rtsp://user:secret@127.0.0.1:8554/cam", "detect_fps": 2}
    r = client.post("/api/v1/cameras", json=body)
    assert r.status_code == 201, r.text
    assert control.started_ids == ["front"]
    assert "secret" not in r.text
    assert "secret" not in repr(services.cameras.get("front"))  # sealed at rest
    assert r.json()["status"]["state"] == "running"
    assert client.post("/api/v1/cameras", json=body).status_code == 409
    got = client.get("/api/v1/cameras/front").json()
    assert got["detect_fps"] == 2 and got["status"]["counters"]["frames_decoded"] == 42
    assert [c["id"] for c in client.get("/api/v1/cameras").json()] == ["front"]
    assert client.get("/api/v1/cameras/front/latest.jpg").status_code == 404
    control.frames["front"] = b"\xff\xd8frame"
    assert client.get("/api/v1/cameras/front/latest.jpg").content == b"\xff\xd8frame"
    assert client.delete("/api/v1/cameras/front").status_code == 204
    assert control.removed_ids == ["front"]
    assert client.get("/api/v1/cameras/front").status_code == 404
    assert client.delete("/api/v1/cameras/front").status_code == 404


SCENE = {
    "zones": [
        {
            "name": "footpath",
            "polygon": [[0.2, 0.5], [0.8, 0.5], [0.9, 0.95], [0.1, 0.95]],
            "inertia": 2,
            "labels": None,
        }
    ],
    "lines": [{"name": "crossing", "a": [0.1, 0.7], "b": [0.9, 0.7], "direction": "in"}],
    "motion_masks": [{"polygon": [[0.0, 0.0], [0.3, 0.0], [0.3, 0.2]]}],
    "object_masks": [{"polygon": [[0.7, 0.0], [1.0, 0.0], [1.0, 0.3]], "labels": ["car"]}],
}


def test_camera_scene_and_overlay(client: TestClient, control: FakeControl) -> None:
    body = {"id": "yard", "source": "/tmp/yard.mp4", **SCENE}
    r = client.post("/api/v1/cameras", json=body)
    assert r.status_code == 201, r.text
    got = client.get("/api/v1/cameras/yard").json()
    assert {key: got[key] for key in SCENE} == SCENE
    assert client.get("/api/v1/cameras").json()[0]["zones"] == SCENE["zones"]

    control.frames["yard"] = encode_jpeg(np.full((120, 160, 3), 90, dtype=np.uint8))
    plain = client.get("/api/v1/cameras/yard/latest.jpg")
    drawn = client.get("/api/v1/cameras/yard/latest.jpg", params={"overlay": "zones"})
    assert plain.status_code == drawn.status_code == 200
    assert drawn.headers["content-type"] == "image/jpeg" and drawn.content[:2] == b"\xff\xd8"
    assert plain.content == control.frames["yard"]
    pixels = decode_jpeg(drawn.content)
    assert pixels.shape == (120, 160, 3)
    assert np.abs(pixels.astype(int) - decode_jpeg(plain.content).astype(int)).max() > 50
    bad = client.get("/api/v1/cameras/yard/latest.jpg", params={"overlay": "boxes"})
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], list)

    control.frames["yard"] = b"\xff\xd8not a jpeg"
    broken = client.get("/api/v1/cameras/yard/latest.jpg", params={"overlay": "zones"})
    assert broken.status_code == 502 and "decoded" in broken.json()["detail"]


def test_camera_scene_edit(client: TestClient, control: FakeControl, services: Services) -> None:
    body = {"id": "yard", "source": "/tmp/yard.mp4"}
    assert client.post("/api/v1/cameras", json=body).status_code == 201
    r = client.put("/api/v1/cameras/yard/scene", json=SCENE)
    assert r.status_code == 200, r.text
    assert {key: r.json()[key] for key in SCENE} == SCENE
    got = client.get("/api/v1/cameras/yard").json()
    assert {key: got[key] for key in SCENE} == SCENE
    assert control.started_ids == ["yard", "yard"]  # restarted with its new scene
    # The config file's cameras are written again at each start: the edited scene stays.
    services.cameras.upsert("yard", {"id": "yard", "source": "/tmp/yard.mp4", "detect_fps": 2})
    got = client.get("/api/v1/cameras/yard").json()
    assert got["zones"] == SCENE["zones"] and got["detect_fps"] == 2

    # A rule on the footpath zone: a scene without it is refused, naming the rule.
    rule = {
        "name": "Footpath",
        "cameras": ["yard"],
        "conditions": {"event": "enter", "zone": "footpath"},
    }
    assert client.post("/api/v1/rules", json=rule).status_code == 201
    r = client.put("/api/v1/cameras/yard/scene", json={**SCENE, "zones": []})
    assert r.status_code == 409 and "'Footpath'" in r.json()["detail"], r.text
    assert "zone 'footpath' is not defined" in r.json()["detail"]
    assert client.delete("/api/v1/cameras/yard/scene").status_code == 409  # the config has none
    assert client.get("/api/v1/cameras/yard").json()["zones"] == SCENE["zones"]
    # Bad geometry is a 422 in FastAPI's shape, and changes nothing.
    crossed = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]
    r = client.put(
        "/api/v1/cameras/yard/scene", json={"zones": [{"name": "z", "polygon": crossed}]}
    )
    assert r.status_code == 422 and isinstance(r.json()["detail"], list), r.text
    assert control.started_ids == ["yard", "yard"]

    [stored] = client.get("/api/v1/rules").json()
    assert client.delete(f"/api/v1/rules/{stored['id']}").status_code == 204
    r = client.delete("/api/v1/cameras/yard/scene")
    assert r.status_code == 200, r.text
    assert r.json()["zones"] == [] and r.json()["object_masks"] == []
    assert not services.cameras.scene_edited("yard")
    assert client.put("/api/v1/cameras/attic/scene", json=SCENE).status_code == 404
    assert client.delete("/api/v1/cameras/attic/scene").status_code == 404


@pytest.mark.parametrize(
    ("scene", "message"),
    [
        (
            {"zones": [{"name": "z", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}]},
            "zone 'z': edges 0 and 2 cross",
        ),
        (
            {"zones": [{"name": "z", "polygon": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.9]]}]},
            "less than or equal to 1",
        ),
        (
            {"zones": [SCENE["zones"][0], SCENE["zones"][0]]},  # type: ignore[index]
            "zone names must be unique",
        ),
        ({"lines": [{"name": "l", "a": [0.5, 0.5], "b": [0.5, 0.5]}]}, "the same point"),
    ],
)
def test_camera_rejects_bad_scene(client: TestClient, scene: dict[str, Any], message: str) -> None:
    r = client.post("/api/v1/cameras", json={"id": "yard", "source": "/tmp/yard.mp4", **scene})
    assert r.status_code == 422, r.text
    assert message in r.text, r.text
    assert client.get("/api/v1/cameras/yard").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "source": "file:///etc/passwd"},
        {"id": "x", "source": "concat:/a|/b"},
        {"id": "Bad Id", "source": "/tmp/a.mp4"},
        {"id": "x", "source": "/tmp/a.mp4", "detect_fps": 0},
        {"id": "x", "source": "/tmp/a.mp4", "unknown_key": 1},
        {"id": "x"},
        {"id": "x", "source": "/tmp/a.mp4", "motion": {"threshold": 3}},
    ],
)
def test_camera_rejects_bad_config(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/api/v1/cameras", json=body)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post(
        "/api/v1/cameras", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_health_and_metrics(client: TestClient, services: Services, control: FakeControl) -> None:
    control.started_ids.append("a")
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "ready": True,
        "database": "ok",
        "detector": "ok",
        "cameras": {"a": "running"},
        "search_backlog": None,  # search is off in these services
    }
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert 'sentinel_frames_decoded_total{camera="a"} 42.0' in text
    assert 'sentinel_detector_latency_ms_bucket{camera="a",le="75.0"} 1.0' in text
    assert 'sentinel_camera_status{camera="a",state="running"} 1.0' in text
    assert client.get("/docs").status_code == 200
    assert "/api/v1/events" in client.get("/openapi.json").json()["paths"]


def test_readiness_reports_detector_down(client: TestClient, services: Services) -> None:
    services.detector = ReadyDetector(ready=False)
    assert client.get("/health").status_code == 200
    r = client.get("/health/ready")
    assert r.status_code == 503 and r.json()["detector"] == "not ready"


def test_snapshot_from_either_object_store(
    store_engine: Engine, tmp_path: Path, object_store: Any, control: FakeControl
) -> None:
    """Snapshots are read through the ObjectStore protocol: a folder or S3, same code path."""
    services = make_services(store_engine, tmp_path, objects=object_store, control=control)
    ev = _event(7)
    key = snapshot_key("a", ev.id)
    object_store.put(key, b"\xff\xd8from-the-store", "image/jpeg")
    services.events.upsert(ev, key)
    admin = add_user(services.security, "root", Role.ADMIN)
    with api_client(services, headers=admin.headers) as c:
        r = c.get(f"/api/v1/events/{ev.id}/snapshot.jpg")
    assert r.status_code == 200 and r.content == b"\xff\xd8from-the-store"
