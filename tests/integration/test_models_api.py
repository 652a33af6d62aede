"""The models API on the in-process app: a real registry (MLflow on a temp dir), the real store
and audit log, the real ModelService; only the Ray side (canary deployment, camera routes,
replicas) is a fake that records what it was asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.api.models import LocalModelControl
from sentinel.config import CanaryGuardSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.models.files import write_digest
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.model_repo import ModelServingRepository
from sentinel.store.repo import CameraRepository, EventRepository
from sentinel.train.registry import CHALLENGER, CHAMPION, ModelRegistry
from sentinel.train.serving import ModelService, route_of
from tests.utils.auth import AuthedUser, add_user
from tests.utils.models import FakeServing, audit_appender
from tests.utils.services import make_services


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """v1 the bundled champion, v2 passed its gate, v3 failed it, v4 passed but its artifact
    was altered after registration, v5 passed."""
    tmp = tmp_path_factory.mktemp("registry")
    reg = ModelRegistry.embedded(tmp / "data")

    def model(name: str) -> Path:
        path = tmp / f"{name}.onnx"
        path.write_bytes(name.encode() * 100)
        write_digest(path)
        return path

    reg.bootstrap_champion(model("bundled"), ["person"], 640)
    for name, gate in (("two", "passed"), ("three", "failed"), ("four", "passed")):
        reg.register(model(name), labels=["person"], input_size=640, tags={"gate": gate})
    reg.register(model("five"), labels=["person"], input_size=640, tags={"gate": "passed"})
    four = reg.get(4)
    (Path(four.source.removeprefix("file://")) / "model.onnx").write_bytes(b"tampered")
    return reg


@pytest.fixture
def fake() -> FakeServing:
    return FakeServing()


@pytest.fixture
def service(
    registry: ModelRegistry, store_engine: Engine, fake: FakeServing, tmp_path: Path
) -> ModelService:
    registry.set_alias(CHAMPION, 1)  # each test starts from the bundled champion
    registry.delete_alias(CHALLENGER)
    return ModelService(
        registry=registry,
        repo=ModelServingRepository(store_engine),
        serving=fake,
        audit=audit_appender(AuditRepository(store_engine)),
        models_dir=tmp_path / "served",
        input_size=640,
        guard=CanaryGuardSettings(min_frames=10, min_judged=2),
    )


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path, service: ModelService) -> Services:
    made = make_services(store_engine, tmp_path, models=LocalModelControl(service))
    CameraRepository(store_engine).upsert("gate", {"id": "gate", "source": "/dev/null"})
    return made


@pytest.fixture
def admin_headers(services: Services) -> dict[str, str]:
    user: AuthedUser = add_user(services.security, "boss", Role.ADMIN)
    return {"Authorization": f"Bearer {user.token}"}


def test_list_shows_versions_aliases_and_gate_tags(
    client: TestClient, services: Services, admin_headers: dict[str, str]
) -> None:
    operator = add_user(services.security, "op", Role.OPERATOR)
    r = client.get("/api/v1/models", headers={"Authorization": f"Bearer {operator.token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["champion"] == 1 and body["canary"] is None
    by_version = {v["version"]: v for v in body["versions"]}
    assert by_version[1]["aliases"] == ["champion"]
    assert by_version[3]["tags"]["gate"] == "failed"
    # An operator reads, but changes nothing: models:admin.
    r = client.post(
        "/api/v1/models/2/canary",
        json={"cameras": ["gate"]},
        headers={"Authorization": f"Bearer {operator.token}"},
    )
    assert r.status_code == 403
    assert client.get("/api/v1/models").status_code == 401


REFUSALS = [
    (3, {"cameras": ["gate"]}, 409, "gate"),
    (4, {"cameras": ["gate"]}, 409, "digest"),
    (1, {"cameras": ["gate"]}, 409, "champion already"),
    (99, {"cameras": ["gate"]}, 404, "no version 99"),
    (2, {"cameras": ["nowhere"]}, 404, "unknown camera"),
    (2, {}, 422, "cameras, or a share"),
    (2, {"share": 1.5}, 422, "less than or equal"),
    (2, {"cameras": ["gate"], "extra": 1}, 422, "Extra inputs"),
]


def test_canary_refuses_what_must_not_be_served(
    client: TestClient, admin_headers: dict[str, str], fake: FakeServing
) -> None:
    for version, body, status, reason in REFUSALS:
        r = client.post(f"/api/v1/models/{version}/canary", json=body, headers=admin_headers)
        assert r.status_code == status, (version, body, r.text)
        assert reason in r.text, (version, body, r.text)
    assert fake.canary is None and fake.routes == []  # nothing was served
    # A version that failed its gate or its digest is not promoted either.
    for version in (3, 4):
        r = client.post(f"/api/v1/models/{version}/promote", headers=admin_headers)
        assert r.status_code == 409, r.text
    assert fake.canary is None and fake.replica_version == 1


def test_canary_then_rollback_returns_every_camera_in_one_request(
    client: TestClient,
    admin_headers: dict[str, str],
    fake: FakeServing,
    services: Services,
    registry: ModelRegistry,
) -> None:
    r = client.post("/api/v1/models/2/canary", json={"cameras": ["gate"]}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["canary"]["version"] == 2 and r.json()["canary"]["cameras"] == ["gate"]
    assert fake.canary is not None and fake.canary["version"] == 2
    assert fake.routes[-1]["canary"] == {
        "version": 2,
        "cameras": ["gate"],
        "share": 0.0,
        "all": False,
    }
    alias = registry.alias(CHALLENGER)
    assert alias is not None and alias.version == 2

    r = client.post("/api/v1/models/2/rollback", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["canary"] is None and r.json()["champion"] == 1
    assert fake.routes[-1]["canary"] is None and fake.canary is None
    assert registry.alias(CHALLENGER) is None
    assert registry.get(2).tags["canary"] == "rolled_back"
    # A camera starting now reads the same route from the store.
    stored = ModelServingRepository(services.engine).get()
    assert stored is not None and route_of(stored.state)["canary"] is None
    actions = [e.action for e in services.security.audit.list(limit=50)[0]]
    assert "models.canary" in actions and "models.rollback" in actions
    assert "POST /models/{version}/canary" in actions  # the request itself, too


def test_promote_swaps_the_champion_and_rollback_restores_it(
    client: TestClient, admin_headers: dict[str, str], fake: FakeServing, registry: ModelRegistry
) -> None:
    r = client.post("/api/v1/models/5/promote", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["champion"] == 5 and r.json()["previous"] == [1]
    champion = registry.alias(CHAMPION)
    assert champion is not None and champion.version == 5 and fake.replica_version == 5
    # Every camera went to the canary while the replicas swapped, then back to the champion.
    assert [route["canary"] and route["canary"]["all"] for route in fake.routes[-2:]] == [
        True,
        None,
    ]
    assert fake.canary is None
    r = client.post("/api/v1/models/5/rollback", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["champion"] == 1 and fake.replica_version == 1
    r = client.post("/api/v1/models/1/rollback", headers=admin_headers)
    assert r.status_code == 409 and "no earlier champion" in r.text


def _event(events: EventRepository, event_id: str, version: int, start: datetime) -> None:
    box = Box(10, 10, 50, 100)
    events.upsert(
        EventState(
            id=event_id,
            camera_id="gate",
            label="person",
            track_id=1,
            started_at=start,
            last_seen_at=start,
            score=0.9,
            box=box,
            best_at=start,
            model_version=version,
        )
    )


def test_figures_and_guard_trip_roll_back_automatically(
    client: TestClient,
    admin_headers: dict[str, str],
    fake: FakeServing,
    service: ModelService,
    services: Services,
    store_engine: Engine,
) -> None:
    r = client.post("/api/v1/models/2/canary", json={"share": 0.5}, headers=admin_headers)
    assert r.status_code == 200, r.text
    # Operators judge alerts of events each model opened: v2's are false alarms.
    events, alerts = EventRepository(store_engine), AlertRepository(store_engine)
    decision = AlertDecision(True, Severity.LOW, "person", (), "", DecidedBy.RULES)
    start = datetime.now(UTC) + timedelta(seconds=1)
    for n, (version, verdict) in enumerate(
        [(1, "true_positive"), (1, "true_positive"), (2, "false_positive"), (2, "false_positive")]
    ):
        _event(events, f"e{n}", version, start)
        alert = alerts.record_rule_decision(f"e{n}", "gate", "person", decision)
        alerts.feedback(alert.id, verdict, None, "op", start)
    assert EventRepository(store_engine).get("e2").model_version == 2  # type: ignore[union-attr]
    fake.tallies = [
        {"1": {"frames": 40, "detections": 80, "latency_ms_sum": 2400.0}},
        {"2": {"frames": 40, "detections": 84, "latency_ms_sum": 2600.0}},
    ]
    body = client.get("/api/v1/models", headers=admin_headers).json()
    figures = {v["version"]: v["figures"] for v in body["versions"] if v["figures"]}
    assert figures[1]["fp_rate"] == 0.0 and figures[2]["fp_rate"] == 1.0
    assert figures[2]["detections_per_frame"] == pytest.approx(2.1)

    reasons = service.check_guard()
    assert len(reasons) == 1 and "false-positive" in reasons[0]
    assert fake.routes[-1]["canary"] is None and fake.canary is None  # rolled back
    entries = services.security.audit.list(limit=50)[0]
    trip = [e for e in entries if e.action == "models.guard_trip"]
    assert trip and trip[0].actor == "guard"
    rollback = [e for e in entries if e.action == "models.rollback"]
    assert rollback and rollback[0].actor == "guard"
