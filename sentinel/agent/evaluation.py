"""Measuring the alert agent on truth: labelled scenarios, rule and agent decisions, scores.

A scenario is a camera (name, description, site notes, its rule policy), the facts of one
incident (local time, the objects seen with their dwell and path, the camera's recent
incidents) and what a careful operator expects: alert or not, and the severity. The scenario
file is validated strictly (a typo fails loudly, naming the scenario and the field), so a
benchmark never silently scores against a half-read truth.

Decisions are scored as the product makes them: the camera's rules decide first and only what
they alert on reaches the agent, which may keep (and re-grade) or withdraw the alert. The agent
alone (asked on every scenario) is scored too, as it tells how much the rules hide.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AwareDatetime, Field, ValidationError, model_validator

from sentinel.domain.alerts import AlertDecision, EventContext, Severity
from sentinel.domain.faithfulness import unsupported_claims
from sentinel.domain.policy import AlertPolicy, rule_decision
from sentinel.domain.strict import StrictModel

SeverityName = Literal["info", "low", "medium", "high", "critical"]
_SEVERITY_ORDER = [s.value for s in Severity]


class ScenarioCamera(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=500)
    site_notes: str = Field("", max_length=1000)
    alert_labels: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    armed_hours: list[tuple[int, int]] | None = None
    min_dwell_s: float = Field(0.0, ge=0)
    rule_severity: SeverityName = "medium"


class ScenarioObject(StrictModel):
    label: str = Field(min_length=1, max_length=40)
    score: float = Field(ge=0.0, le=1.0)
    dwell_s: float = Field(ge=0.0, le=86_400.0)
    path: str = Field(min_length=1, max_length=300)


class Expected(StrictModel):
    alert: bool
    severity: SeverityName


class Scenario(StrictModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,80}$")
    category: str = Field(min_length=1, max_length=40)
    camera: ScenarioCamera
    started_at: AwareDatetime
    local_time: str = Field(min_length=1, max_length=60)
    objects: list[ScenarioObject] = Field(min_length=1, max_length=50)
    recent: list[str] = Field(default_factory=list, max_length=20)
    expected: Expected

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if not self.expected.alert and self.expected.severity != "info":
            raise ValueError("a scenario expected not to alert must have severity 'info'")
        if self.expected.alert and self.expected.severity == "info":
            raise ValueError("a scenario expected to alert needs a severity above 'info'")
        return self


class ScenarioFile(StrictModel):
    version: Literal[1]
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ScenarioFile:
        seen: set[str] = set()
        for s in self.scenarios:
            if s.id in seen:
                raise ValueError(f"scenario id {s.id!r} appears twice")
            seen.add(s.id)
        return self


class ScenarioError(ValueError):
    """The scenario file is missing, not YAML, or does not validate."""


def load_scenarios(path: Path) -> list[Scenario]:
    """Reads and validates a scenario file.

    Raises:
        ScenarioError: naming the file and, for a validation error, each failing location
            (scenario index and field) with what was wrong.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenarios: {exc}") from exc
    try:
        return ScenarioFile.model_validate(raw).scenarios
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise ScenarioError(f"{path}: {exc.error_count()} invalid field(s): {problems}") from exc


def _describe(obj: ScenarioObject) -> str:
    return f"{obj.label} (confidence {obj.score:.2f}, {obj.dwell_s:.0f} s in view): {obj.path}"


def context_of(scenario: Scenario) -> EventContext:
    """The agent's facts for a scenario: its main object first, every object in the movement."""
    main = max(scenario.objects, key=lambda o: (o.dwell_s, o.score))
    counts: dict[str, int] = {}
    for obj in scenario.objects:
        counts[obj.label] = counts.get(obj.label, 0) + 1
    seen = ", ".join(f"{n} {label}" for label, n in counts.items())
    movement = f"objects in view: {seen}. " + "; ".join(_describe(o) for o in scenario.objects)
    dwell = max(o.dwell_s for o in scenario.objects)
    return EventContext(
        event_id=scenario.id,
        camera_id=scenario.camera.id,
        camera_name=scenario.camera.name,
        camera_description=scenario.camera.description,
        label=main.label,
        score=max(o.score for o in scenario.objects),
        started_at=scenario.started_at,
        last_seen_at=scenario.started_at + timedelta(seconds=dwell),
        ended_at=None,
        local_time=scenario.local_time,
        dwell_s=dwell,
        path_summary=movement,
        recent_events=tuple(scenario.recent),
        site_notes=scenario.camera.site_notes,
    )


def policy_of(camera: ScenarioCamera) -> AlertPolicy:
    return AlertPolicy(
        labels=frozenset(camera.alert_labels),
        armed_hours=tuple((a, b) for a, b in camera.armed_hours) if camera.armed_hours else None,
        min_dwell_s=camera.min_dwell_s,
        severity=Severity(camera.rule_severity),
    )


def rules_decision(scenario: Scenario) -> AlertDecision | None:
    """What the camera's rules decide, on any of the scenario's objects (the first that fires)."""
    policy = policy_of(scenario.camera)
    base = context_of(scenario)
    hour = _local_hour(scenario)
    for obj in scenario.objects:
        ctx = dataclasses.replace(base, label=obj.label, dwell_s=obj.dwell_s)
        decision = rule_decision(policy, ctx, hour)
        if decision is not None:
            return decision
    return None


def _local_hour(scenario: Scenario) -> int:
    """The hour of the scenario's local time ("Tuesday 02:14" → 2)."""
    for token in scenario.local_time.split():
        head, sep, _ = token.partition(":")
        if sep and head.isdigit():
            return int(head) % 24
    raise ScenarioError(f"scenario {scenario.id}: local_time has no HH:MM")


@dataclass(frozen=True, slots=True)
class Judged:
    """One scenario's outcome on one side (rules, or rules then agent, or agent alone)."""

    scenario: Scenario
    alert: bool
    severity: Severity
    summary: str | None = None  # the emitted summary, when a model wrote it
    fallback: str | None = None  # why the rule decision stood instead of the model's


@dataclass(frozen=True, slots=True)
class Scores:
    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float
    severity_exact: float  # among true positives
    severity_within_one: float
    faithfulness: float  # emitted model summaries whose facts are all in the context
    summaries: int
    fallbacks: int

    def line(self) -> str:
        return (
            f"P {self.precision:.3f}  R {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"severity {self.severity_exact:.3f} (±1: {self.severity_within_one:.3f})  "
            f"faithful {self.faithfulness:.3f} of {self.summaries}  fallbacks {self.fallbacks}  "
            f"(tp {self.tp} fp {self.fp} fn {self.fn} tn {self.tn})"
        )


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def score(judged: Sequence[Judged], prompts: Iterable[str] | None = None) -> Scores:
    """Precision, recall and F1 of the alert decision, severity accuracy on true positives and
    the faithfulness of emitted summaries (checked against each scenario's rendered facts).

    Args:
        judged: One outcome per scenario.
        prompts: The rendered facts per scenario, in the same order, for faithfulness; when
            None the scenario's context variables are used as the facts.
    """
    facts = list(prompts) if prompts is not None else [_facts_text(j.scenario) for j in judged]
    tp = fp = fn = tn = exact = near = faithful = summaries = fallbacks = 0
    for j, text in zip(judged, facts, strict=True):
        expected = j.scenario.expected
        if j.fallback is not None:
            fallbacks += 1
        if j.summary is not None:
            summaries += 1
            faithful += not unsupported_claims(j.summary, text)
        if j.alert and expected.alert:
            tp += 1
            want = _SEVERITY_ORDER.index(expected.severity)
            got = _SEVERITY_ORDER.index(j.severity.value)
            exact += got == want
            near += abs(got - want) <= 1
        elif j.alert:
            fp += 1
        elif expected.alert:
            fn += 1
        else:
            tn += 1
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (
        2 * precision * recall / (precision + recall)
        if tp and not math.isnan(precision + recall)
        else 0.0
    )
    return Scores(
        n=len(judged),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=precision,
        recall=recall,
        f1=f1,
        severity_exact=_ratio(exact, tp),
        severity_within_one=_ratio(near, tp),
        faithfulness=_ratio(faithful, summaries),
        summaries=summaries,
        fallbacks=fallbacks,
    )


def _facts_text(scenario: Scenario) -> str:
    return "\n".join(context_of(scenario).variables().values())
