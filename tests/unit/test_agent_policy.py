from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sentinel.domain.alerts import DecidedBy, EventContext, Severity
from sentinel.domain.policy import AlertPolicy, rule_decision


def _ctx(label: str = "person", dwell_s: float = 45.0) -> EventContext:
    t0 = datetime(2024, 5, 1, 23, 10, tzinfo=UTC)
    return EventContext(
        event_id="ev-1",
        camera_id="cam-1",
        camera_name="Back door",
        camera_description="Rear entrance and bins",
        label=label,
        score=0.87,
        started_at=t0,
        last_seen_at=t0,
        ended_at=None,
        local_time="23:10",
        dwell_s=dwell_s,
        path_summary="walked from the gate to the door",
    )


NIGHT = ((22, 6),)


@pytest.mark.parametrize(
    ("policy", "label", "dwell_s", "hour", "alerts"),
    [
        (AlertPolicy(), "person", 0.0, 12, True),
        (AlertPolicy(), "car", 100.0, 12, False),
        (AlertPolicy(labels=frozenset({"car", "person"})), "car", 0.0, 3, True),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 22, True),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 23, True),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 0, True),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 5, True),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 6, False),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 12, False),
        (AlertPolicy(armed_hours=NIGHT), "person", 0.0, 21, False),
        (AlertPolicy(armed_hours=((9, 17),)), "person", 0.0, 9, True),
        (AlertPolicy(armed_hours=((9, 17),)), "person", 0.0, 17, False),
        (AlertPolicy(armed_hours=((0, 24),)), "person", 0.0, 23, True),
        (AlertPolicy(armed_hours=((1, 2), (20, 3))), "person", 0.0, 1, True),
        (AlertPolicy(armed_hours=((1, 2), (20, 3))), "person", 0.0, 10, False),
        (AlertPolicy(min_dwell_s=30.0), "person", 29.9, 12, False),
        (AlertPolicy(min_dwell_s=30.0), "person", 30.0, 12, True),
        (AlertPolicy(min_dwell_s=30.0, armed_hours=NIGHT), "person", 60.0, 12, False),
    ],
)
def test_rule_decision_fires(
    policy: AlertPolicy, label: str, dwell_s: float, hour: int, alerts: bool
) -> None:
    decision = rule_decision(policy, _ctx(label, dwell_s), hour)
    assert (decision is not None) == alerts


def test_rule_decision_content() -> None:
    policy = AlertPolicy(armed_hours=NIGHT, min_dwell_s=30.0, severity=Severity.HIGH)
    decision = rule_decision(policy, _ctx(), 23)
    assert decision is not None
    assert (decision.alert, decision.severity, decision.decided_by) == (
        True,
        Severity.HIGH,
        DecidedBy.RULES,
    )
    assert decision.summary == (
        "Person detected on camera Back door at 23:10 (confidence 0.87), in view for 45 s."
    )
    assert decision.reasons == (
        "label 'person' is one of the alert labels",
        "local hour 23 is within armed hours 22:00-06:00",
        "in view for 45 s, at least the 30 s minimum",
    )
    assert decision.recommended_action == "Review the clip."


def test_rule_decision_always_armed_reason() -> None:
    decision = rule_decision(AlertPolicy(), _ctx(), 12)
    assert decision is not None
    assert decision.reasons == (
        "label 'person' is one of the alert labels",
        "the camera is always armed",
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"labels": frozenset()}, "at least one label"),
        ({"min_dwell_s": -1.0}, "min_dwell_s must be >= 0"),
        ({"min_dwell_s": float("nan")}, "min_dwell_s must be >= 0"),
        ({"armed_hours": ()}, "at least one range"),
        ({"armed_hours": ((22, 22),)}, r"but got \(22, 22\)"),
        ({"armed_hours": ((24, 2),)}, r"but got \(24, 2\)"),
        ({"armed_hours": ((-1, 2),)}, r"but got \(-1, 2\)"),
        ({"armed_hours": ((1, 25),)}, r"but got \(1, 25\)"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AlertPolicy(**kwargs)


@pytest.mark.parametrize("hour", [-1, 24])
def test_rule_decision_rejects_bad_hour(hour: int) -> None:
    with pytest.raises(ValueError, match=r"local_hour must be in 0\.\.23"):
        rule_decision(AlertPolicy(), _ctx(), hour)
