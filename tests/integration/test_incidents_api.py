"""The incident API over real stores and real recorded segments (SQLite and PostgreSQL):
filters, cursor, detail with members and alert, the clip, and camera scopes."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from sentinel.api.deps import Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.incidents import Incident, KeyFrame
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.objects import snapshot_key
from sentinel.store.segment_repo import SegmentRecord
from tests.integration import test_recordings_api as rec
from tests.utils.auth import add_user

CAM = rec.CAM
at = rec.at
# Fixtures of the recordings API tests: real stores, five real 4 s segments of CAM, an admin
# signed in on every request (admin and client come from the integration conftest).
recorded, services, records, client_headers = (
    rec.recorded,
    rec.services,
    rec.records,
    rec.client_headers,
)


def _event(camera: str, n: int, start: float, end: float, label: str = "person") -> EventState:
    return EventState(
        id=f"00000000-0000-0000-0003-{n:012d}",
        camera_id=camera,
        label=label,
        track_id=n,
        started_at=at(start),
        last_seen_at=at(end),
        score=0.5 + n / 100,
        box=Box(1, 2, 30, 60),
        best_at=at(start),
        ended_at=at(end),
    )


def _seed(services: Services) -> dict[str, Incident]:
    repo = IncidentRepository(services.engine)
    out: dict[str, Incident] = {}
    for n, (camera, start, end, labels) in enumerate(
        [
            (CAM, 4.0, 9.0, ("person", "car")),
            ("yard", 6.0, 30.0, ("dog",)),
            (CAM, 40.0, 50.0, ("person",)),
        ],
        start=1,
    ):
        members = [_event(camera, n * 10 + i, start, end, label) for i, label in enumerate(labels)]
        for ev in members:
            services.objects.put(snapshot_key(camera, ev.id), b"\xff\xd8", "image/jpeg")
            services.events.upsert(ev, snapshot_key(camera, ev.id))
        inc = Incident(
            id=f"00000000-0000-0000-0004-{n:012d}",
            camera_id=camera,
            started_at=at(start),
            last_seen_at=at(end),
            ended_at=None if n == 3 else at(end),
            members=tuple(m.id for m in members),
            labels=labels,
            key_frames=tuple(KeyFrame(m.id, m.label, m.score, m.best_at) for m in members),
        )
        repo.upsert(inc, {m.id: m.label for m in members})
        out[camera if camera == "yard" else f"{camera}-{n}"] = inc
    first = out[f"{CAM}-1"]
    decision = AlertDecision(True, Severity.HIGH, "person", ("rule",), "look", DecidedBy.RULES)
    services.agent.alerts.record_rule_decision(
        first.members[0], CAM, "person", decision, incident_id=first.id
    )
    return out


def test_list_filters_pages_and_detail(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    seeded = _seed(services)
    body = client.get("/api/v1/incidents").json()
    assert [i["id"] for i in body["items"]] == [
        seeded[f"{CAM}-3"].id,
        seeded["yard"].id,
        seeded[f"{CAM}-1"].id,
    ]
    one = client.get("/api/v1/incidents", params={"label": "car"}).json()["items"]
    assert [i["id"] for i in one] == [seeded[f"{CAM}-1"].id]
    assert one[0]["labels"] == ["person", "car"] and one[0]["zones"] == []
    assert one[0]["key_frames"][0]["snapshot_url"].endswith("/snapshot.jpg")
    opened = client.get("/api/v1/incidents", params={"status": "open"}).json()["items"]
    assert [i["id"] for i in opened] == [seeded[f"{CAM}-3"].id]
    cam = client.get("/api/v1/incidents", params={"camera_id": "yard"}).json()["items"]
    assert [i["id"] for i in cam] == [seeded["yard"].id]
    window = {"since": at(35).isoformat(), "until": at(60).isoformat()}
    assert [i["id"] for i in client.get("/api/v1/incidents", params=window).json()["items"]] == [
        seeded[f"{CAM}-3"].id
    ]
    page = client.get("/api/v1/incidents", params={"limit": 2}).json()
    rest = client.get(
        "/api/v1/incidents", params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert len(page["items"]) == 2 and [i["id"] for i in rest["items"]] == [seeded[f"{CAM}-1"].id]
    assert rest["next_cursor"] is None
    for bad in ({"limit": 501}, {"status": "pending"}, {"cursor": "garbage"}):
        assert client.get("/api/v1/incidents", params=bad).status_code in (400, 422)

    detail = client.get(f"/api/v1/incidents/{seeded[f'{CAM}-1'].id}").json()
    assert [m["id"] for m in detail["members"]] == list(seeded[f"{CAM}-1"].members)
    assert detail["alert"]["incident_id"] == seeded[f"{CAM}-1"].id
    assert detail["alert"]["severity"] == "high"
    alerts = client.get("/api/v1/alerts").json()["items"]
    assert [a["incident_id"] for a in alerts] == [seeded[f"{CAM}-1"].id]
    assert client.get("/api/v1/incidents/nope").status_code == 404


def test_incident_clip_covers_the_incident_with_padding(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    seeded = _seed(services)
    inc = seeded[f"{CAM}-1"]  # 4 s to 9 s of the recording
    r = client.get(f"/api/v1/incidents/{inc.id}/clip.mp4", params={"pre_s": 2, "post_s": 3})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    start = datetime.fromisoformat(r.headers["x-clip-start"])
    end = datetime.fromisoformat(r.headers["x-clip-end"])
    assert start <= at(2) and end >= at(12) - timedelta(seconds=0.2)
    assert rec.decode(r.content)
    # Another camera's incident without footage: 404, not an empty clip.
    assert client.get(f"/api/v1/incidents/{seeded['yard'].id}/clip.mp4").status_code == 404


def test_viewer_of_one_camera_never_sees_anothers_incidents(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    seeded = _seed(services)
    viewer = add_user(services.security, "viewer", Role.VIEWER, ["yard"])
    listed = client.get("/api/v1/incidents", headers=viewer.headers)
    assert [i["id"] for i in listed.json()["items"]] == [seeded["yard"].id]
    assert CAM not in listed.text
    for inc in (seeded[f"{CAM}-1"], seeded[f"{CAM}-3"]):
        for suffix in ("", "/clip.mp4"):
            r = client.get(f"/api/v1/incidents/{inc.id}{suffix}", headers=viewer.headers)
            assert r.status_code == 404, r.text
    own = client.get(f"/api/v1/incidents/{seeded['yard'].id}", headers=viewer.headers).json()
    assert own["alert"] is None  # a viewer may not read alerts
    assert [m["camera_id"] for m in own["members"]] == ["yard"]
