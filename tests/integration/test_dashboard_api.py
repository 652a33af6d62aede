"""The dashboard's history routes over real stores (SQLite and PostgreSQL).

Events and alerts are written at known hours on two cameras; the counts per hour, camera and
label, the alert rates and verdicts come back as written, within the caller's cameras; a bad
window is a 422; the system series come from samples of the cameras' counters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from tests.utils.api import api_client
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import FakeControl, make_services

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=4)).isoformat()}


def _event(services: Services, camera: str, label: str, at: datetime) -> str:
    ev = EventState(
        id=str(uuid.uuid4()),
        camera_id=camera,
        label=label,
        track_id=1,
        started_at=at,
        last_seen_at=at + timedelta(seconds=3),
        score=0.9,
        box=Box(1, 2, 30, 60),
        best_at=at,
        ended_at=at + timedelta(seconds=3),
    )
    services.events.upsert(ev, None)
    return ev.id


class Seeded:
    def __init__(self, services: Services, client: TestClient) -> None:
        self.services, self.client = services, client
        sec = services.security
        self.admin = add_user(sec, "admin", Role.ADMIN)
        self.limited = add_user(sec, "op-a", Role.ADMIN, cameras=["cam-a"])
        alerts = services.agent.alerts
        clock = {"now": T0}
        alerts._clock = lambda: clock["now"]  # alerts created at known hours
        decision = AlertDecision(True, Severity.HIGH, "x", ("r",), "look", DecidedBy.RULES)
        quiet = AlertDecision(False, Severity.LOW, "x", ("r",), "none", DecidedBy.RULES)
        plan = [  # (camera, label, minutes after T0, verdict or None; "quiet": no alert)
            ("cam-a", "person", 5, "true_positive"),
            ("cam-a", "person", 50, "false_positive"),
            ("cam-a", "car", 65, None),
            ("cam-b", "person", 10, "false_positive"),
            ("cam-b", "dog", 185, "quiet"),
            ("cam-b", "person", 60 * 30, None),  # outside the window
        ]
        for cam, label, minutes, verdict in plan:
            at = T0 + timedelta(minutes=minutes)
            clock["now"] = at
            eid = _event(services, cam, label, at)
            rec = alerts.record_rule_decision(
                eid, cam, label, quiet if verdict == "quiet" else decision
            )
            if verdict in ("true_positive", "false_positive"):
                alerts.feedback(rec.id, verdict, None, self.admin.id, at)

    def get(self, user: AuthedUser, path: str, **params: str) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/dashboard/{path}", params=params, headers=user.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def seeded(store_engine: Engine, tmp_path: Path) -> Iterator[Seeded]:
    control = FakeControl()
    control.started_ids += ["cam-a", "cam-b"]
    services = make_services(store_engine, tmp_path, control=control)
    for cam in ("cam-a", "cam-b"):
        services.cameras.upsert(cam, {"id": cam, "source": f"/videos/{cam}.mp4"})
    with api_client(services) as client:
        yield Seeded(services, client)


def test_event_counts_by_camera_label_and_hour(seeded: Seeded) -> None:
    s = seeded.get(seeded.admin, "events", **WINDOW)
    assert len(s["hours"]) == 4 and s["hours"][0] == T0.isoformat()
    assert s["total"] == [3, 1, 0, 1]
    assert s["by_camera"] == {"cam-a": [2, 1, 0, 0], "cam-b": [1, 0, 0, 1]}
    assert s["by_label"] == {"car": [0, 1, 0, 0], "dog": [0, 0, 0, 1], "person": [3, 0, 0, 0]}
    one = seeded.get(seeded.admin, "events", camera_id="cam-b", **WINDOW)
    assert one["total"] == [1, 0, 0, 1] and list(one["by_camera"]) == ["cam-b"]


def test_alert_rates_and_verdicts(seeded: Seeded) -> None:
    s = seeded.get(seeded.admin, "alerts", **WINDOW)
    assert s["alerts"] == [3, 1, 0, 0]  # the quiet decision is no alert
    assert s["true_positive"] == [1, 0, 0, 0] and s["false_positive"] == [2, 0, 0, 0]
    assert s["alerts_per_hour"] == 1.0
    assert s["false_positive_rate"] == pytest.approx(2 / 3, abs=1e-3)


def test_a_camera_limited_caller_counts_only_its_cameras(seeded: Seeded) -> None:
    events = seeded.get(seeded.limited, "events", **WINDOW)
    assert events["total"] == [2, 1, 0, 0] and list(events["by_camera"]) == ["cam-a"]
    alerts = seeded.get(seeded.limited, "alerts", **WINDOW)
    assert alerts["alerts"] == [2, 1, 0, 0] and alerts["false_positive"] == [1, 0, 0, 0]
    r = seeded.client.get(
        "/api/v1/dashboard/events",
        params={"camera_id": "cam-b", **WINDOW},
        headers=seeded.limited.headers,
    )
    assert r.status_code == 404
    system = seeded.get(seeded.limited, "system")
    assert list(system["cameras"]) == ["cam-a"] and "cam-b" not in str(system)


@pytest.mark.parametrize(
    "params",
    [
        {"start": (T0 + timedelta(hours=2)).isoformat(), "end": T0.isoformat()},
        {"start": T0.isoformat(), "end": (T0 + timedelta(days=8)).isoformat()},
        {"start": "2026-11-30T08:00:00", "end": T0.isoformat()},  # no time zone
        {"start": "yesterday"},
    ],
    ids=["reversed", "too-long", "naive", "not-a-time"],
)
@pytest.mark.parametrize("path", ["events", "alerts"])
def test_bad_windows_are_422(seeded: Seeded, path: str, params: dict[str, str]) -> None:
    r = seeded.client.get(f"/api/v1/dashboard/{path}", params=params, headers=seeded.admin.headers)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_system_series_sampled_from_the_cameras(seeded: Seeded) -> None:
    s = seeded.get(seeded.admin, "system")
    assert s["interval_s"] > 0 and len(s["times"]) >= 1
    assert set(s["cameras"]) == {"cam-a", "cam-b"}
    series = s["cameras"]["cam-a"]
    assert series["state"][-1] == "running"
    assert series["detector_latency_ms"][-1] is None or series["detector_latency_ms"][-1] >= 0
    anonymous = seeded.client.get("/api/v1/dashboard/system")
    assert anonymous.status_code == 401
