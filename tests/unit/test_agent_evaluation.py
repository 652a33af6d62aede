"""The agent's labelled scenarios and their scoring (benchmarks/agent_quality.py uses both)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentinel.agent.evaluation import (
    Judged,
    Scenario,
    ScenarioError,
    context_of,
    load_scenarios,
    rules_decision,
    score,
)
from sentinel.domain.alerts import Severity

SCENARIOS = Path(__file__).parents[2] / "benchmarks" / "data" / "agent_scenarios.yaml"

CATEGORIES = {
    "night_intrusion",
    "passer_by",
    "delivery",
    "loitering",
    "vehicle_on_footpath",
    "staff",
    "crowd",
    "animal",
    "false_detection",
    "guard_round",
    "vehicle_night",
    "after_hours",
}


def _scenario(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "s1",
        "category": "night_intrusion",
        "camera": {"id": "yard", "name": "Yard", "description": "the yard"},
        "started_at": "2026-11-24T02:14:00+00:00",
        "local_time": "Tuesday 02:14",
        "objects": [{"label": "person", "score": 0.9, "dwell_s": 60, "path": "walked in"}],
        "expected": {"alert": True, "severity": "high"},
    }
    base.update(over)
    return base


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def test_the_committed_set_validates_and_covers_every_category() -> None:
    scenarios = load_scenarios(SCENARIOS)
    assert len(scenarios) >= 80
    assert {s.category for s in scenarios} == CATEGORIES
    alerts = sum(s.expected.alert for s in scenarios)
    assert 0.25 < alerts / len(scenarios) < 0.6  # both answers are well represented


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("version: 1\nscenarios: [\n", "cannot read scenarios"),
        ({"version": 2, "scenarios": [_scenario()]}, "version"),
        ({"version": 1, "scenarios": [_scenario(extra=1)]}, "scenarios.0.extra"),
        ({"version": 1, "scenarios": [_scenario(objects=[])]}, "scenarios.0.objects"),
        (
            {"version": 1, "scenarios": [_scenario(expected={"alert": True, "severity": "bad"})]},
            "scenarios.0.expected.severity",
        ),
        (
            {"version": 1, "scenarios": [_scenario(expected={"alert": False, "severity": "high"})]},
            "expected not to alert",
        ),
        ({"version": 1, "scenarios": [_scenario(started_at="2026-11-24T02:14:00")]}, "timezone"),
        ({"version": 1, "scenarios": [_scenario(), _scenario()]}, "appears twice"),
    ],
)
def test_a_bad_file_fails_loudly_naming_what_is_wrong(
    tmp_path: Path, doc: Any, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenarios(_write(tmp_path, doc))


def test_context_holds_every_object_and_the_camera_facts() -> None:
    s = Scenario.model_validate(
        _scenario(
            objects=[
                {"label": "person", "score": 0.8, "dwell_s": 30, "path": "walked to the door"},
                {"label": "truck", "score": 0.9, "dwell_s": 300, "path": "parked by the door"},
            ],
            recent=["Monday 23:01: person, 95 s"],
        )
    )
    ctx = context_of(s)
    assert ctx.label == "truck" and ctx.dwell_s == 300 and ctx.score == 0.9
    assert "1 person, 1 truck" in ctx.path_summary and "walked to the door" in ctx.path_summary
    assert ctx.recent_events == ("Monday 23:01: person, 95 s",)


def test_rules_fire_on_any_object_within_armed_hours() -> None:
    camera = {"id": "yard", "name": "Yard", "description": "d", "armed_hours": [[22, 6]]}
    night = Scenario.model_validate(_scenario(camera=camera))
    day = Scenario.model_validate(_scenario(camera=camera, local_time="Tuesday 14:00"))
    assert rules_decision(night) is not None and rules_decision(day) is None
    dog = Scenario.model_validate(
        _scenario(objects=[{"label": "dog", "score": 0.9, "dwell_s": 5, "path": "ran"}])
    )
    assert rules_decision(dog) is None


def test_scores_are_exact() -> None:
    def s(i: int, alert: bool, severity: str) -> Scenario:
        return Scenario.model_validate(
            _scenario(id=f"s{i}", expected={"alert": alert, "severity": severity})
        )

    judged = [
        Judged(s(1, True, "high"), True, Severity.HIGH, "A person walked in at 02:14."),
        Judged(s(2, True, "high"), True, Severity.MEDIUM, "A truck walked in."),  # unfaithful
        Judged(s(3, True, "medium"), False, Severity.INFO),
        Judged(s(4, False, "info"), True, Severity.LOW, fallback="unfaithful summary"),
        Judged(s(5, False, "info"), False, Severity.INFO),
    ]
    got = score(judged)
    assert (got.tp, got.fp, got.fn, got.tn) == (2, 1, 1, 1)
    assert got.precision == pytest.approx(2 / 3) and got.recall == pytest.approx(2 / 3)
    assert got.f1 == pytest.approx(2 / 3)
    assert got.severity_exact == 0.5 and got.severity_within_one == 1.0
    assert got.summaries == 2 and got.faithfulness == 0.5 and got.fallbacks == 1


def test_rules_baseline_on_the_committed_set() -> None:
    scenarios = load_scenarios(SCENARIOS)
    judged = []
    for sc in scenarios:
        d = rules_decision(sc)
        judged.append(Judged(sc, d is not None, d.severity if d else Severity.INFO))
    got = score(judged)
    # Always-armed policies alert on every listed label: all true alerts, many false ones.
    assert got.recall == 1.0 and got.fp > 0 and got.tn == 0
    assert math.isnan(got.faithfulness) and got.summaries == 0
