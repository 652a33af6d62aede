"""The rules and arming API over real stores (SQLite and PostgreSQL): versions and conflicts,
refusals (403, 404, 409, 422), camera scopes, the audit trail and dry runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sentinel.api.deps import Services
from sentinel.domain.incidents import Incident
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.store.incident_repo import IncidentRepository
from tests.utils.auth import AuthedUser, add_user

RULES = "/api/v1/rules"
ARMING = "/api/v1/arming"
# Wednesday 2026-01-14 23:14 in Berlin.
NIGHT = datetime(2026, 1, 14, 22, 14, tzinfo=UTC)


@pytest.fixture
def client_headers(admin: AuthedUser) -> dict[str, str]:
    return admin.headers


@pytest.fixture(autouse=True)
def cameras(services: Services) -> None:
    services.cameras.upsert(
        "front",
        {
            "id": "front",
            "source": "/videos/front.mp4",
            "zones": [{"name": "gate", "polygon": [[0, 0], [1, 0], [1, 1]]}],
            "lines": [{"name": "door", "a": [0, 0], "b": [1, 1]}],
        },
    )
    services.cameras.upsert("back", {"id": "back", "source": "/videos/back.mp4"})


def gate_rule(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Gate after dark",
        "cameras": ["front"],
        "severity": "high",
        "conditions": {"labels": ["person"], "event": "enter", "zone": "gate"},
        "schedule": {
            "hours": [{"start": "22:00", "end": "06:00"}],
            "timezone": "Europe/Berlin",
        },
        "modes": ["away", "night"],
    }
    body.update(kw)
    return body


def scene(**kw: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "enter",
        "camera_id": "front",
        "track_id": 4,
        "label": "person",
        "score": 0.81,
        "at": NIGHT.isoformat(),
        "zone": "gate",
    }
    event.update(kw)
    return event


def test_create_edit_versions_delete(client: TestClient, admin: AuthedUser) -> None:
    r = client.post(RULES, json=gate_rule())
    assert r.status_code == 201, r.text
    rule = r.json()
    rid = rule["id"]
    assert rule["version"] == 1 and rule["created_at"] is not None
    assert [x["id"] for x in client.get(RULES).json()] == [rid]
    assert client.get(f"{RULES}/{rid}").json()["conditions"]["zone"] == "gate"

    r = client.put(f"{RULES}/{rid}", json={**gate_rule(name="Gate at night"), "version": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["name"]) == (2, "Gate at night")
    r = client.put(f"{RULES}/{rid}", json={**gate_rule(name="stale"), "version": 1})
    assert r.status_code == 409
    assert "version 2" in r.json()["detail"]

    versions = client.get(f"{RULES}/{rid}/versions").json()
    assert [(v["version"], v["rule"]["name"], v["changed_by"]) for v in versions] == [
        (1, "Gate after dark", admin.id),
        (2, "Gate at night", admin.id),
    ]
    assert client.delete(f"{RULES}/{rid}").status_code == 204
    assert client.get(f"{RULES}/{rid}").status_code == 404
    assert client.get(RULES).json() == []
    assert client.delete(f"{RULES}/{rid}").status_code == 404
    assert client.get(ARMING).json()["revision"] == 3  # create, edit, delete


def test_changes_are_audited(client: TestClient) -> None:
    rid = client.post(RULES, json=gate_rule()).json()["id"]
    client.put(f"{RULES}/{rid}", json={**gate_rule(), "version": 1})
    client.post(ARMING, json={"mode": "night"})
    items = client.get("/api/v1/audit").json()["items"]
    seen = [(e["action"], e["detail"].get("version"), e["detail"].get("mode")) for e in items]
    assert seen[:3] == [
        ("POST /arming", None, "night"),
        ("PUT /rules/{rule_id}", 2, None),
        ("POST /rules", 1, None),
    ]
    assert items[1]["target"] == f'{{"rule_id": "{rid}"}}'


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (gate_rule(conditions={"labels": []}), "would never match: the rule lists no labels"),
        (gate_rule(modes=[]), "applies in no arming mode"),
        (gate_rule(schedule={"days": []}), "the schedule has no days"),
        (
            gate_rule(conditions={"event": "seen", "zone": "gate"}),
            "a zone condition needs an enter, exit or dwell event",
        ),
        (
            gate_rule(conditions={"event": "enter", "zone": "pool"}),
            "camera 'front': zone 'pool' is not defined (zones: gate)",
        ),
        (
            gate_rule(cameras=["front", "back"]),
            "camera 'back': zone 'gate' is not defined (zones: none)",
        ),
        (
            gate_rule(cameras=[], conditions={"event": "cross", "line": "fence"}),
            "line 'fence' is not defined (lines: door)",
        ),
        (gate_rule(cameras=["attic"]), "unknown camera 'attic'"),
    ],
)
def test_rules_that_cannot_work_are_refused(
    client: TestClient, body: dict[str, Any], detail: str
) -> None:
    r = client.post(RULES, json=body)
    assert r.status_code == 422, r.text
    assert any(detail in e["msg"] for e in r.json()["detail"]), r.text


@pytest.mark.parametrize(
    "body",
    [
        gate_rule(colour="red"),
        gate_rule(severity="warning"),
        gate_rule(schedule={"timezone": "Mars/Olympus"}),
        gate_rule(schedule={"hours": [{"start": "7:00", "end": "08:00"}]}),
        gate_rule(cooldown_s=-1),
        gate_rule(actions=[]),
    ],
)
def test_malformed_rules_are_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post(RULES, json=body).status_code == 422


def test_rule_for_every_camera_needs_the_names_somewhere(client: TestClient) -> None:
    r = client.post(RULES, json=gate_rule(cameras=[]))
    assert r.status_code == 201, r.text
    assert r.json()["cameras"] == []


def test_non_admins_cannot_write(client: TestClient, services: Services) -> None:
    rid = client.post(RULES, json=gate_rule()).json()["id"]
    for role in (Role.VIEWER, Role.OPERATOR):
        h = add_user(services.security, f"u-{role.value}", role).headers
        assert client.get(RULES, headers=h).status_code == 200
        assert client.post(RULES, json=gate_rule(), headers=h).status_code == 403
        put = client.put(f"{RULES}/{rid}", json={**gate_rule(), "version": 1}, headers=h)
        assert put.status_code == 403
        assert client.delete(f"{RULES}/{rid}", headers=h).status_code == 403
        assert client.post(ARMING, json={"mode": "home"}, headers=h).status_code == 403
        assert client.get(ARMING, headers=h).status_code == 200
    assert client.get(f"{RULES}/{rid}").json()["version"] == 1


def test_camera_limits(client: TestClient, services: Services) -> None:
    front = client.post(RULES, json=gate_rule()).json()["id"]
    both = client.post(
        RULES, json=gate_rule(name="Both", cameras=["front", "back"], conditions={})
    ).json()["id"]
    back = client.post(
        RULES, json=gate_rule(name="Back only", cameras=["back"], conditions={})
    ).json()["id"]
    anywhere = client.post(RULES, json=gate_rule(name="Any", cameras=[], conditions={}))
    assert anywhere.status_code == 201
    viewer = add_user(services.security, "front-viewer", Role.VIEWER, ["front"]).headers
    listed = client.get(RULES, headers=viewer).json()
    assert {x["name"]: x["cameras"] for x in listed} == {
        "Any": [],
        "Both": ["front"],  # cut to the viewer's cameras: "back" is not named
        "Gate after dark": ["front"],
    }
    assert "back" not in client.get(RULES, headers=viewer).text
    assert client.get(f"{RULES}/{back}", headers=viewer).status_code == 404
    assert client.get(f"{RULES}/{back}/versions", headers=viewer).status_code == 404

    limited = add_user(services.security, "front-admin", Role.ADMIN, ["front"]).headers
    assert client.post(RULES, json=gate_rule(), headers=limited).status_code == 201
    assert client.post(RULES, json=gate_rule(cameras=[]), headers=limited).status_code == 403
    mixed = gate_rule(cameras=["front", "back"], conditions={})
    assert client.post(RULES, json=mixed, headers=limited).status_code == 403
    put = client.put(f"{RULES}/{front}", json={**gate_rule(), "version": 1}, headers=limited)
    assert put.status_code == 200
    assert client.delete(f"{RULES}/{both}", headers=limited).status_code == 403
    assert client.delete(f"{RULES}/{back}", headers=limited).status_code == 404
    assert client.post(ARMING, json={"mode": "home"}, headers=limited).status_code == 403


def test_arming(client: TestClient, admin: AuthedUser) -> None:
    r = client.get(ARMING)
    assert r.json() == {"mode": "away", "revision": 0, "changed_by": None, "at": None}
    r = client.post(ARMING, json={"mode": "night"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["mode"], body["revision"], body["changed_by"]) == ("night", 1, admin.id)
    assert client.get(ARMING).json()["mode"] == "night"
    assert client.post(ARMING, json={"mode": "party"}).status_code == 422


def test_dry_run_a_scene_event(client: TestClient) -> None:
    rid = client.post(RULES, json=gate_rule()).json()["id"]
    r = client.post(f"{RULES}/{rid}/test", json={"event": scene()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] and body["mode"] == "away"
    [tried] = body["events"]
    assert tried["explanation"] == (
        "Rule 'Gate after dark' (v1): person entered zone 'gate' at 23:14 (score 0.81), "
        "schedule 22:00\u201306:00 Europe/Berlin, mode away"
    )
    assert all(x["ok"] for x in tried["reasons"])
    # By day, in home mode: two conditions fail, and say why.
    day = scene(at=(NIGHT - timedelta(hours=10)).isoformat())
    r = client.post(f"{RULES}/{rid}/test", json={"event": day, "mode": "home"})
    body = r.json()
    assert not body["matched"] and body["events"][0]["explanation"] is None
    failed = {x["condition"]: x["detail"] for x in body["events"][0]["reasons"] if not x["ok"]}
    assert set(failed) == {"mode", "schedule"}
    assert "outside the schedule" in failed["schedule"]
    # Twice in a row still matches: a dry run has no cooldown.
    again = client.post(f"{RULES}/{rid}/test", json={"event": scene()})
    assert again.json()["matched"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"event": scene(), "event_id": "x"},
        {"event": scene(at="2026-01-14T22:14:00")},  # no offset
    ],
)
def test_dry_run_bodies(client: TestClient, body: dict[str, Any]) -> None:
    rid = client.post(RULES, json=gate_rule()).json()["id"]
    assert client.post(f"{RULES}/{rid}/test", json=body).status_code == 422


def _stored_event(services: Services, camera: str = "front") -> EventState:
    ev = EventState(
        id=f"00000000-0000-0000-0009-{len(camera):012d}",
        camera_id=camera,
        label="person",
        track_id=7,
        started_at=NIGHT,
        last_seen_at=NIGHT + timedelta(seconds=40),
        score=0.9,
        box=Box(1, 2, 30, 60),
        best_at=NIGHT + timedelta(seconds=5),
        ended_at=NIGHT + timedelta(seconds=40),
    )
    services.events.upsert(ev, None)
    return ev


def test_dry_run_stored_event_and_incident(client: TestClient, services: Services) -> None:
    seen = client.post(RULES, json=gate_rule(name="Seen", conditions={"event": "seen"}))
    dwell = client.post(
        RULES,
        json=gate_rule(
            name="Loiter", conditions={"event": "dwell", "zone": "gate", "min_dwell_s": 30}
        ),
    )
    seen_id, dwell_id = seen.json()["id"], dwell.json()["id"]
    ev = _stored_event(services)
    r = client.post(f"{RULES}/{seen_id}/test", json={"event_id": ev.id})
    assert r.status_code == 200, r.text
    assert r.json()["matched"] and "seen event" in r.json()["note"]
    assert r.json()["events"][0]["explanation"].startswith("Rule 'Seen' (v1): person seen at")
    assert not client.post(f"{RULES}/{dwell_id}/test", json={"event_id": ev.id}).json()["matched"]

    inc = Incident(
        "00000000-0000-0000-0008-000000000001",
        "front",
        ev.started_at,
        ev.last_seen_at,
        ev.ended_at,
        (ev.id,),
        ("person",),
        zones=("gate",),
    )
    IncidentRepository(services.engine).upsert(inc)
    r = client.post(f"{RULES}/{dwell_id}/test", json={"incident_id": inc.id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"]
    assert [(e["kind"], e["matched"]) for e in body["events"]] == [
        ("seen", False),
        ("enter", False),
        ("dwell", True),
    ]
    assert "stayed in zone 'gate' for 40 s" in body["events"][2]["explanation"]
    missing = {"incident_id": "00000000-0000-0000-0008-000000000009"}
    assert client.post(f"{RULES}/{dwell_id}/test", json=missing).status_code == 404


def test_dry_run_respects_camera_limits(client: TestClient, services: Services) -> None:
    rid = client.post(RULES, json=gate_rule(cameras=[], conditions={})).json()["id"]
    back_event = _stored_event(services, "back")
    viewer = add_user(services.security, "front-viewer", Role.VIEWER, ["front"]).headers
    url = f"{RULES}/{rid}/test"
    assert client.post(url, json={"event_id": back_event.id}, headers=viewer).status_code == 404
    hidden = {"event": scene(camera_id="back")}
    assert client.post(url, json=hidden, headers=viewer).status_code == 404
    assert client.post(url, json={"event": scene()}, headers=viewer).status_code == 200
