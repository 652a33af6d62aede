"""The RuleGen API over real stores (SQLite and PostgreSQL) and a seeded history: a run stores
mask, rule and tightening suggestions with exact figures, a re-run refreshes instead of
duplicating, accepting writes rules (validated, versioned, audited) or returns the mask,
rejecting sticks, and camera scopes and roles hold (403, 404, 409, 422)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import RuleGenServices, Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.rules.schedule import AUDIT_ACTION, AUDIT_ACTOR
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.audit_repo import AuditRepository
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import FakeControl, make_services

SUGGESTIONS = "/api/v1/rules/suggestions"
RULES = "/api/v1/rules"
RUN = "/api/v1/rulegen/run"
STATUS = "/api/v1/rulegen/status"
T0 = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday
# The history runs from the first person (Monday 08:00) to the last (Sunday 19:00).
DAYS = (6 * 24 + 11) / 24


class SizedControl(FakeControl):
    """Running cameras that report their frame sizes (what mask suggestions need)."""

    async def statuses(self) -> dict[str, dict[str, Any]]:
        return {"gate": {"width": 1000, "height": 1000}, "yard": {"width": 800, "height": 600}}


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path) -> Services:
    return make_services(
        store_engine, tmp_path, control=SizedControl(), rulegen=RuleGenServices(history_days=None)
    )


@pytest.fixture
def client_headers(admin: AuthedUser) -> dict[str, str]:
    return admin.headers


@pytest.fixture(autouse=True)
def cameras(services: Services) -> None:
    services.cameras.upsert("gate", {"id": "gate", "source": "/videos/gate.mp4"})
    services.cameras.upsert("yard", {"id": "yard", "source": "/videos/yard.mp4"})


@pytest.fixture
def bikes(client: TestClient, services: Services) -> str:
    """A rule on bicycles in the yard and its history: 12 alerts, 9 judged false (scores
    0.30-0.38, spread over the yard) and 3 true (0.80-0.82)."""
    r = client.post(
        RULES,
        json={
            "name": "Bikes",
            "cameras": ["yard"],
            "conditions": {"labels": ["bicycle"], "event": "seen", "min_score": 0.2},
        },
    )
    assert r.status_code == 201, r.text
    rule_id: str = r.json()["id"]
    seed(services, rule_id)
    return rule_id


def seed(services: Services, bikes_rule: str) -> None:
    """One week:

    - gate: 84 people by day (08:00-19:00, bottom centre (600, 900)), never alerted;
    - gate: 10 cars judged false, bottom centres in the grid-16 cell x 0.25-0.3125,
      y 0.5-0.5625, at 08:00-17:00 on Monday to Friday;
    - yard: the 12 alerts of the bikes rule at 09:00, 9 false then 3 true.
    """
    events = services.events
    alerts = AlertRepository(services.engine, clock=lambda: T0)
    decision = AlertDecision(True, Severity.MEDIUM, "seen", ("rule",), "look", DecidedBy.RULES)

    def add(
        event_id: str, camera: str, label: str, at: datetime, x: float, y: float, score: float,
    ) -> None:  # fmt: skip
        box = Box(x - 20, y - 90, x + 20, y)
        state = EventState(
            event_id, camera, label, 1, at, at + timedelta(seconds=8), score, box, at
        )
        events.upsert(state)

    def alert(event_id: str, camera: str, label: str, verdict: str, rule: str | None) -> None:
        record = alerts.record_rule_decision(event_id, camera, label, decision)
        if rule is not None:
            alerts.attach_rule(record.id, rule, 1, "Rule 'Bikes' (v1): bicycle seen")
        alerts.feedback(record.id, verdict, None, "operator", T0)

    for day in range(7):
        for hour in range(8, 20):
            at = T0 + timedelta(days=day, hours=hour)
            add(f"p-{day}-{hour}", "gate", "person", at, 600, 900, 0.9)
    for i in range(10):
        at = T0 + timedelta(days=i % 5, hours=8 + i)
        add(f"car-{i}", "gate", "car", at, 255 + 5 * i, 505 + 5 * i, 0.7)
        alert(f"car-{i}", "gate", "car", "false_positive", None)
    for i in range(12):
        false = i < 9
        score = round(0.30 + 0.01 * i if false else 0.80 + 0.01 * (i - 9), 2)
        at = T0 + timedelta(days=i % 7, hours=9)
        add(f"bike-{i}", "yard", "bicycle", at, 25 + 60 * i, 300, score)
        verdict = "false_positive" if false else "true_positive"
        alert(f"bike-{i}", "yard", "bicycle", verdict, bikes_rule)


def run(client: TestClient) -> dict[str, Any]:
    r = client.post(RUN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def by_kind(client: TestClient, **params: Any) -> dict[str, list[dict[str, Any]]]:
    r = client.get(SUGGESTIONS, params=params)
    assert r.status_code == 200, r.text
    out: dict[str, list[dict[str, Any]]] = {"mask": [], "rule": [], "tightening": []}
    for item in r.json():
        out[item["kind"]].append(item)
    return out


def test_run_stores_suggestions_with_their_backtests(client: TestClient, bikes: str) -> None:
    report = run(client)
    assert report == {
        "engine": "pandas",
        "since": None,
        "found": 5,
        "created": 5,
        "updated": 0,
        "kept": 0,
    }
    found = by_kind(client)
    [mask] = found["mask"]
    assert (mask["camera_id"], mask["status"]) == ("gate", "suggested")
    assert mask["proposal"]["object_mask"] == {
        "polygon": [[0.25, 0.5], [0.3125, 0.5], [0.3125, 0.5625], [0.25, 0.5625]],
        "labels": ["car"],
    }
    assert mask["proposal"]["false_positives"] == 10
    assert mask["backtest"] == {
        "matched": 10,  # every car judged false, nothing else
        "per_day": pytest.approx(10 / DAYS),
        "days": pytest.approx(DAYS),
        "true_positives": 0,
        "false_positives": 10,
        "unjudged": 0,
        "precision": 0.0,
        "recall": None,  # gate has no true verdicts to lose
        "cpu_share": pytest.approx(10 / 94),  # of gate's 84 people and 10 cars
    }
    assert mask["reason"].startswith("operators marked 10 car detections here as false alarms")

    # Quiet hours (local UTC) of each busy camera x label become rules; none fired there.
    rules = {
        (r["camera_id"], r["proposal"]["label"]): (
            r["proposal"]["start_hour"],
            r["proposal"]["end_hour"],
            r["backtest"]["matched"],
        )
        for r in found["rule"]
    }
    assert rules == {
        ("gate", "car"): (18, 8, 0),
        ("gate", "person"): (20, 8, 0),
        ("yard", "bicycle"): (10, 9, 0),
    }

    [tight] = found["tightening"]
    assert tight["camera_id"] is None
    assert tight["proposal"] == {
        "rule_id": bikes,
        "min_score": 0.39,
        "alerts": 12,
        "false_positives": 9,
        "false_positives_removed": 9,
        "true_positives_lost": 0,
    }
    assert tight["backtest"]["matched"] == 3
    assert (tight["backtest"]["precision"], tight["backtest"]["recall"]) == (1.0, 1.0)
    assert tight["backtest"]["per_day"] == pytest.approx(3 / DAYS)


def test_a_rerun_refreshes_open_suggestions_and_keeps_decided_ones(
    client: TestClient, bikes: str
) -> None:
    run(client)
    found = by_kind(client)
    client.post(f"{SUGGESTIONS}/{found['mask'][0]['id']}/reject")
    again = run(client)
    assert (again["found"], again["created"], again["updated"], again["kept"]) == (5, 0, 4, 1)
    after = client.get(SUGGESTIONS).json()
    assert len(after) == 5  # no duplicates
    assert sum(1 for s in after if s["updated_at"] is not None) == 4
    assert [s["status"] for s in after if s["kind"] == "mask"] == ["rejected"]


def test_accept_a_rule_suggestion_writes_the_rule(
    client: TestClient, bikes: str, admin: AuthedUser
) -> None:
    run(client)
    [night] = [s for s in by_kind(client)["rule"] if s["proposal"]["label"] == "person"]
    r = client.post(f"{SUGGESTIONS}/{night['id']}/accept")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object_mask"] is None
    rule = body["rule"]
    assert (rule["name"], rule["version"], rule["cameras"]) == (
        "person on gate 20:00\u201308:00", 1, ["gate"],
    )  # fmt: skip
    assert rule["conditions"]["labels"] == ["person"] and rule["conditions"]["event"] == "seen"
    assert rule["schedule"]["hours"] == [{"start": "20:00", "end": "08:00"}]
    decided = body["suggestion"]
    assert (decided["status"], decided["decided_by"], decided["rule_id"]) == (
        "accepted", admin.id, rule["id"],
    )  # fmt: skip
    assert client.get(f"{RULES}/{rule['id']}").json()["name"] == rule["name"]
    versions = client.get(f"{RULES}/{rule['id']}/versions").json()
    assert [(v["version"], v["changed_by"]) for v in versions] == [(1, admin.id)]
    # Decided: a second decision is a conflict, either way.
    assert client.post(f"{SUGGESTIONS}/{night['id']}/accept").status_code == 409
    assert client.post(f"{SUGGESTIONS}/{night['id']}/reject").status_code == 409
    assert [s["id"] for s in client.get(SUGGESTIONS, params={"status": "accepted"}).json()] == [
        night["id"]
    ]

    audit = client.get("/api/v1/audit").json()["items"]
    accepts = [e for e in audit if e["action"] == "POST /rules/suggestions/{suggestion_id}/accept"]
    assert [(e["outcome"], e["detail"].get("rule_id")) for e in accepts] == [
        ("denied:409", None),
        ("success", rule["id"]),
    ]
    assert accepts[1]["detail"]["version"] == 1 and accepts[1]["detail"]["kind"] == "rule"
    assert accepts[1]["target"] == f'{{"suggestion_id": "{night["id"]}"}}'
    runs = [e for e in audit if e["action"] == "POST /rulegen/run"]
    assert runs[0]["detail"]["created"] == 5


def test_accept_a_tightening_writes_the_next_version(client: TestClient, bikes: str) -> None:
    before = client.post(f"{RULES}/{bikes}/backtest")
    assert before.status_code == 200, before.text
    figures = before.json()["backtest"]
    assert (figures["matched"], figures["true_positives"], figures["false_positives"]) == (12, 3, 9)
    assert figures["precision"] == 0.25 and figures["recall"] == 1.0
    assert figures["per_day"] == pytest.approx(12 / DAYS)
    assert before.json()["events"] == 106 and before.json()["version"] == 1

    run(client)
    [tight] = by_kind(client)["tightening"]
    r = client.post(f"{SUGGESTIONS}/{tight['id']}/accept")
    assert r.status_code == 200, r.text
    rule = r.json()["rule"]
    assert (rule["id"], rule["version"], rule["conditions"]["min_score"]) == (bikes, 2, 0.39)

    after = client.post(f"{RULES}/{bikes}/backtest").json()
    assert after["version"] == 2
    assert (after["backtest"]["matched"], after["backtest"]["precision"]) == (3, 1.0)


def test_accept_a_mask_puts_it_in_the_cameras_scene(
    client: TestClient, bikes: str, services: Services
) -> None:
    run(client)
    [mask] = by_kind(client)["mask"]
    control = services.control
    assert isinstance(control, FakeControl)
    restarts = control.started_ids.count("gate")
    r = client.post(f"{SUGGESTIONS}/{mask['id']}/accept")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rule"] is None
    assert body["object_mask"] == mask["proposal"]["object_mask"]
    assert body["suggestion"]["status"] == "accepted"
    assert client.get(RULES).json()[0]["name"] == "Bikes"  # no rule was written
    assert len(client.get(RULES).json()) == 1
    # The camera runs with it: its edited scene holds the mask, and it was restarted.
    camera = client.get("/api/v1/cameras/gate").json()
    assert camera["object_masks"] == [mask["proposal"]["object_mask"]]
    assert camera["zones"] == [] and camera["lines"] == []
    assert control.started_ids.count("gate") == restarts + 1
    assert services.cameras.scene_edited("gate")


def test_accepting_a_mask_for_a_camera_that_is_gone_is_409_and_stays_open(
    client: TestClient, bikes: str
) -> None:
    run(client)
    [mask] = by_kind(client)["mask"]
    assert client.delete("/api/v1/cameras/gate").status_code == 204
    r = client.post(f"{SUGGESTIONS}/{mask['id']}/accept")
    assert r.status_code == 409 and "no longer exists" in r.json()["detail"]
    assert client.get(f"{SUGGESTIONS}/{mask['id']}").json()["status"] == "suggested"


def test_reject(client: TestClient, bikes: str, admin: AuthedUser) -> None:
    run(client)
    [tight] = by_kind(client)["tightening"]
    r = client.post(f"{SUGGESTIONS}/{tight['id']}/reject")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decided_by"]) == ("rejected", admin.id)
    assert client.post(f"{SUGGESTIONS}/{tight['id']}/accept").status_code == 409
    assert client.get(f"{RULES}/{bikes}").json()["version"] == 1  # untouched
    assert client.get(f"{SUGGESTIONS}/{tight['id']}").json()["status"] == "rejected"


def test_unknown_ids_are_404(client: TestClient, bikes: str) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"{SUGGESTIONS}/{missing}").status_code == 404
    assert client.post(f"{SUGGESTIONS}/{missing}/accept").status_code == 404
    assert client.post(f"{SUGGESTIONS}/{missing}/reject").status_code == 404
    assert client.post(f"{RULES}/{missing}/backtest").status_code == 404
    assert client.get(SUGGESTIONS, params={"status": "maybe"}).status_code == 422


def test_a_rule_that_no_longer_fits_is_422_and_stays_open(
    client: TestClient, bikes: str, services: Services
) -> None:
    run(client)
    [yard] = [s for s in by_kind(client)["rule"] if s["camera_id"] == "yard"]
    services.cameras.delete("yard")
    r = client.post(f"{SUGGESTIONS}/{yard['id']}/accept")
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"] == "unknown camera 'yard'"
    assert client.get(f"{SUGGESTIONS}/{yard['id']}").json()["status"] == "suggested"


def test_roles(client: TestClient, bikes: str, services: Services) -> None:
    run(client)
    [mask] = by_kind(client)["mask"]
    for role in (Role.VIEWER, Role.OPERATOR):
        h = add_user(services.security, f"u-{role.value}", role).headers
        assert client.get(SUGGESTIONS, headers=h).status_code == 200
        assert client.post(f"{SUGGESTIONS}/{mask['id']}/accept", headers=h).status_code == 403
        assert client.post(f"{SUGGESTIONS}/{mask['id']}/reject", headers=h).status_code == 403
        assert client.post(RUN, headers=h).status_code == 403
    assert client.get(f"{SUGGESTIONS}/{mask['id']}").json()["status"] == "suggested"


def test_camera_scopes(client: TestClient, bikes: str, services: Services) -> None:
    run(client)
    viewer = add_user(services.security, "gate-viewer", Role.VIEWER, ["gate"]).headers
    seen = client.get(SUGGESTIONS, headers=viewer).json()
    assert sorted((s["kind"], s["camera_id"]) for s in seen) == [
        ("mask", "gate"),
        ("rule", "gate"),
        ("rule", "gate"),
    ]
    everything = by_kind(client)
    [yard] = [s for s in everything["rule"] if s["camera_id"] == "yard"]
    [tight] = everything["tightening"]
    for hidden in (yard, tight):
        assert client.get(f"{SUGGESTIONS}/{hidden['id']}", headers=viewer).status_code == 404
    assert client.post(f"{RULES}/{bikes}/backtest", headers=viewer).status_code == 404

    limited = add_user(services.security, "gate-admin", Role.ADMIN, ["gate"]).headers
    assert client.post(RUN, headers=limited).status_code == 403
    assert client.post(f"{SUGGESTIONS}/{yard['id']}/accept", headers=limited).status_code == 404
    [car] = [s for s in everything["rule"] if s["proposal"]["label"] == "car"]
    r = client.post(f"{SUGGESTIONS}/{car['id']}/accept", headers=limited)
    assert r.status_code == 200, r.text
    # A rule for every camera, backtested by the gate viewer: gate's events only.
    r = client.post(
        RULES,
        json={"name": "Anything", "conditions": {"labels": ["car", "bicycle"], "event": "seen"}},
    )
    anything = r.json()["id"]
    mine = client.post(f"{RULES}/{anything}/backtest", headers=viewer).json()
    assert (mine["events"], mine["backtest"]["matched"]) == (94, 10)
    assert mine["notes"][0] == "counted on your cameras' events only"
    site = client.post(f"{RULES}/{anything}/backtest").json()
    assert (site["events"], site["backtest"]["matched"]) == (106, 22)


def test_backtest_window(client: TestClient, bikes: str) -> None:
    # The seeded week is long past: a 30-day window holds none of it.
    r = client.post(f"{RULES}/{bikes}/backtest", params={"days": 30})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["events"], body["backtest"]["matched"], body["backtest"]["per_day"]) == (0, 0, 0)
    assert body["since"] is not None
    assert client.post(f"{RULES}/{bikes}/backtest", params={"days": 0}).status_code == 422


def test_tightening_a_deleted_rule_is_409_and_stays_open(client: TestClient, bikes: str) -> None:
    run(client)
    [tight] = by_kind(client)["tightening"]
    assert client.delete(f"{RULES}/{bikes}").status_code == 204
    r = client.post(f"{SUGGESTIONS}/{tight['id']}/accept")
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"rule {bikes} no longer exists"
    assert client.get(f"{SUGGESTIONS}/{tight['id']}").json()["status"] == "suggested"


def test_status_shows_the_last_scheduled_run_and_the_next(
    client: TestClient, services: Services
) -> None:
    status = client.get(STATUS)
    assert status.status_code == 200, status.text
    assert status.json() == {
        "engine": "pandas",
        "interval_s": None,
        "last_run": None,
        "next_run": None,
    }
    services.rulegen.interval_s = 6 * 3600.0
    assert client.get(STATUS).json()["next_run"] is None  # before the first run
    ran = datetime.now(UTC) - timedelta(hours=1)
    AuditRepository(services.engine).append(
        actor=AUDIT_ACTOR,
        action=AUDIT_ACTION,
        target="",
        client="internal",
        outcome="success",
        detail={"found": 3, "created": 2, "updated": 1, "kept": 0, "engine": "pandas"},
        at=ran,
    )
    client.post(RUN)  # a run by hand is not the schedule's
    body = client.get(STATUS).json()
    assert body["last_run"]["outcome"] == "success" and body["last_run"]["detail"]["found"] == 3
    assert datetime.fromisoformat(body["last_run"]["at"]) == ran
    assert datetime.fromisoformat(body["next_run"]) == ran + timedelta(hours=6)
