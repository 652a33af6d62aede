"""Alerts, prompts and experiments through the HTTP API (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from sentinel.api.deps import Services
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.gateway.roles import Role
from tests.utils.auth import AuthedUser, add_user


def _rule(camera: str) -> AlertDecision:
    return AlertDecision(
        True, Severity.HIGH, f"Person at {camera}", ("person",), "Look.", DecidedBy.RULES
    )


def test_alerts_scoped_acknowledged_and_judged(client: TestClient, services: Services) -> None:
    alerts = services.agent.alerts
    a = alerts.record_rule_decision("ev-a", "front", "person", _rule("front"))
    alerts.record_rule_decision("ev-b", "back", "person", _rule("back"))
    viewer = add_user(services.security, "limited", Role.VIEWER, ["front"])
    operator = add_user(services.security, "op", Role.OPERATOR)
    seen = client.get("/api/v1/alerts", headers=viewer.headers).json()["items"]
    assert [x["camera_id"] for x in seen] == ["front"]
    assert client.get(f"/api/v1/alerts/{a.id}", headers=viewer.headers).status_code == 200
    assert client.post(f"/api/v1/alerts/{a.id}/ack", headers=viewer.headers).status_code == 403
    acked = client.post(f"/api/v1/alerts/{a.id}/ack", headers=operator.headers).json()
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == operator.id
    judged = client.post(
        f"/api/v1/alerts/{a.id}/feedback",
        json={"verdict": "false_positive", "note": "the gardener"},
        headers=operator.headers,
    ).json()
    assert judged["verdict"] == "false_positive" and judged["verdict_note"] == "the gardener"
    bad = client.post(
        f"/api/v1/alerts/{a.id}/feedback", json={"verdict": "maybe"}, headers=operator.headers
    )
    assert bad.status_code == 422
    high = client.get(
        "/api/v1/alerts", params={"severity": "high", "camera_id": "back"}, headers=operator.headers
    ).json()["items"]
    assert [x["camera_id"] for x in high] == ["back"]


def test_prompt_versions_validated_at_save(client: TestClient, admin: AuthedUser) -> None:
    h = admin.headers
    r = client.post(
        "/api/v1/prompts/alert", json={"system": "s", "template": "At {nowhere}"}, headers=h
    )
    assert r.status_code == 400 and "nowhere" in r.json()["detail"]
    v1 = client.post(
        "/api/v1/prompts/alert",
        json={"system": "Be factual.", "template": "A {label} on {camera_name}", "activate": True},
        headers=h,
    ).json()
    v2 = client.post(
        "/api/v1/prompts/alert",
        json={"system": "Be brief.", "template": "{label} at {local_time}"},
        headers=h,
    ).json()
    assert (v1["version"], v1["active"], v2["version"], v2["active"]) == (1, True, 2, False)
    assert client.delete("/api/v1/prompts/alert/1", headers=h).status_code == 409  # active
    versions = client.get("/api/v1/prompts/alert", headers=h).json()
    assert [v["version"] for v in versions] == [1, 2]


def test_experiment_report_and_promotion(
    client: TestClient, services: Services, admin: AuthedUser
) -> None:
    h = admin.headers
    for template in ("A {label}", "B {label}"):
        client.post("/api/v1/prompts/alert", json={"system": "s", "template": template}, headers=h)
    body = {
        "name": "ab",
        "variants": [
            {"name": "one", "prompt_version": 1, "weight": 3},
            {"name": "two", "prompt_version": 2, "weight": 1},
        ],
    }
    exp = client.post("/api/v1/experiments", json=body, headers=h)
    assert exp.status_code == 201, exp.text
    exp_id = exp.json()["id"]
    assert (
        client.post("/api/v1/experiments", json={**body, "name": "ab2"}, headers=h).status_code
        == 409
    )  # one running experiment per prompt
    alerts = services.agent.alerts
    for i in range(6):
        variant = "one" if i < 4 else "two"
        alerts.record_rule_decision(f"e{i}", "cam", "person", _rule("cam"))
        llm = AlertDecision(
            True,
            Severity.MEDIUM,
            "s",
            ("r",),
            "a",
            DecidedBy.LLM,
            prompt_version="alert@1",
            model="m",
            latency_ms=100.0 * (i + 1),
            prompt_tokens=10,
            completion_tokens=20,
        )
        alerts.amend(f"e{i}", llm, experiment_id=exp_id, variant=variant)
        record = alerts.by_event(f"e{i}")
        assert record is not None
        verdict = "false_positive" if i in (0, 4) else "true_positive"
        alerts.feedback(record.id, verdict, "", admin.id, datetime.now(UTC))
    rep = {
        r["variant"]: r
        for r in client.get(f"/api/v1/experiments/{exp_id}", headers=h).json()["report"]
    }
    assert rep["one"]["decisions"] == 4 and rep["one"]["false_positives"] == 1
    assert rep["one"]["false_alarm_rate"] == pytest.approx(0.25)
    lo, hi = rep["one"]["false_alarm_ci95"]
    assert 0 < lo < 0.25 < hi < 1
    assert rep["two"]["decisions"] == 2 and rep["two"]["false_alarm_rate"] == pytest.approx(0.5)
    assert rep["one"]["mean_tokens"] == pytest.approx(30)
    promoted = client.post(
        f"/api/v1/experiments/{exp_id}/promote", json={"variant": "two"}, headers=h
    ).json()
    assert promoted["status"] == "stopped" and promoted["winner"] == "two"
    active = [v for v in client.get("/api/v1/prompts/alert", headers=h).json() if v["active"]]
    assert [v["version"] for v in active] == [2]
