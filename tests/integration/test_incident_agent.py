"""The agent judges an incident: one queue item per incident, its context, re-judging on a
material change no more often than the configured interval (real stores, both databases)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from sentinel.actors.agent_worker import AgentWorker
from sentinel.actors.incidents import IncidentKeeper
from sentinel.actors.rule_alerts import RuleAlerts
from sentinel.config import AgentSettings, AlertPolicySettings
from sentinel.domain.alerts import (
    AgentOutcome,
    AlertDecision,
    DecidedBy,
    EventContext,
    PromptSpec,
    Severity,
)
from sentinel.domain.incidents import IncidentConfig
from sentinel.domain.policy import AlertPolicy, rule_decision
from sentinel.domain.types import Box, EventChange, EventChangeKind, EventState
from sentinel.store.alert_repo import (
    AgentQueue,
    AlertRepository,
    ExperimentRepository,
    PromptRepository,
)
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.repo import CameraRepository, EventRepository

T0 = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)


def _ev(key: str, start: float, last: float, label: str = "person") -> EventState:
    return EventState(
        id=f"00000000-0000-0000-0002-{key:0>12}",
        camera_id="yard",
        label=label,
        track_id=1,
        started_at=T0 + timedelta(seconds=start),
        last_seen_at=T0 + timedelta(seconds=last),
        score=0.8,
        box=Box(10, 10, 40, 100),
        best_at=T0 + timedelta(seconds=start),
        path=[(20, 50), (120, 60)],
    )


def test_incident_is_judged_once_then_again_on_material_change(store_engine: Engine) -> None:
    events, alerts, queue = (
        EventRepository(store_engine),
        AlertRepository(store_engine),
        AgentQueue(store_engine),
    )
    CameraRepository(store_engine).upsert(
        "yard", {"id": "yard", "source": "/v.mp4", "name": "Back yard", "description": "a lawn"}
    )
    now = [0.0]
    rules = RuleAlerts(
        "yard",
        AlertPolicySettings(),
        alerts,
        queue,
        agent_enabled=True,
        rejudge_interval_s=60.0,
        clock=lambda: now[0],
    )
    keeper = IncidentKeeper(
        "yard",
        "e",
        IncidentConfig(dwell_thresholds_s=(30.0,)),
        IncidentRepository(store_engine),
        events,
        on_incident=rules.on_incident,
    )
    seen: list[EventContext] = []

    async def decide(ctx: EventContext, prompt: PromptSpec) -> AgentOutcome:
        seen.append(ctx)
        decision = rule_decision(AlertPolicy(labels=frozenset(ctx.label.split(", "))), ctx, 23)
        return AgentOutcome(decision)

    worker = AgentWorker(
        AgentSettings(site_notes="closed at night"),
        decide=decide,
        events=events,
        cameras=CameraRepository(store_engine),
        alerts=alerts,
        queue=queue,
        prompts=PromptRepository(store_engine),
        experiments=ExperimentRepository(store_engine),
        incidents=IncidentRepository(store_engine),
    )

    def feed(*states: EventState) -> None:
        changes = [EventChange(EventChangeKind.UPDATED, s) for s in states]
        for s in states:
            events.upsert(s)
        keeper.on_changes(changes)

    a, b = _ev("a", 0, 2), _ev("b", 1, 3)
    feed(a, b)  # two people at once: one incident, one alert, one queue item
    assert queue.backlog() == 1 and len(alerts.list()[0]) == 1
    assert asyncio.run(worker.run_once())
    ctx = seen[-1]
    assert ctx.incident_id is not None and ctx.label == "person"
    assert len(ctx.path_summary.splitlines()) == 2
    assert ctx.camera_description == "a lawn" and ctx.site_notes == "closed at night"
    assert not asyncio.run(worker.run_once())  # nothing more to judge

    feed(replace(a, last_seen_at=T0 + timedelta(seconds=10)))  # no material change
    assert queue.backlog() == 0
    now[0] = 10.0
    feed(_ev("c", 12, 12, label="car"))  # a new label, but judged 10 s ago: not yet
    assert queue.backlog() == 0
    now[0] = 61.0
    feed(replace(a, last_seen_at=T0 + timedelta(seconds=31)))  # dwell past 30 s, interval over
    assert queue.backlog() == 1
    [alert] = alerts.list()[0]
    assert alert.llm_status == "pending" and alert.incident_id == ctx.incident_id
    assert asyncio.run(worker.run_once())
    again = seen[-1]
    assert again.incident_id == ctx.incident_id and again.label == "person, car"
    assert len(again.path_summary.splitlines()) == 3
    assert queue.backlog() == 0 and len(alerts.list()[0]) == 1


def test_a_summarising_backend_keeps_the_rule_decision_in_its_words(store_engine: Engine) -> None:
    """An advisory outcome (the embedded model's default): the model says "no alert, low",
    but the rule alert stays open at the rule's severity, with the model's summary and its
    own verdict kept as the first reason."""
    events, alerts, queue = (
        EventRepository(store_engine),
        AlertRepository(store_engine),
        AgentQueue(store_engine),
    )
    CameraRepository(store_engine).upsert(
        "yard", {"id": "yard", "source": "/v.mp4", "name": "Back yard", "description": "a lawn"}
    )
    rules = RuleAlerts("yard", AlertPolicySettings(), alerts, queue, agent_enabled=True)
    keeper = IncidentKeeper(
        "yard",
        "e",
        IncidentConfig(),
        IncidentRepository(store_engine),
        events,
        on_incident=rules.on_incident,
    )

    async def decide(ctx: EventContext, prompt: PromptSpec) -> AgentOutcome:
        said = AlertDecision(
            alert=False,
            severity=Severity.LOW,
            summary="A person crossed the back yard lawn at night.",
            reasons=("night",),
            recommended_action="Check the yard camera.",
            decided_by=DecidedBy.LLM,
            model="qwen",
            backend="embedded",
        )
        return AgentOutcome(said, backend="embedded", advisory=True)

    worker = AgentWorker(
        AgentSettings(),
        decide=decide,
        events=events,
        cameras=CameraRepository(store_engine),
        alerts=alerts,
        queue=queue,
        prompts=PromptRepository(store_engine),
        experiments=ExperimentRepository(store_engine),
        incidents=IncidentRepository(store_engine),
    )
    state = _ev("d", 0, 2)
    events.upsert(state)
    keeper.on_changes([EventChange(EventChangeKind.UPDATED, state)])
    [before] = alerts.list()[0]
    assert asyncio.run(worker.run_once())
    [after] = alerts.list()[0]
    assert after.id == before.id and after.status == before.status == "open"
    assert after.alert and after.severity == before.severity != Severity.LOW
    assert after.decided_by == DecidedBy.RULES and after.llm_status == "done"
    assert after.summary == "A person crossed the back yard lawn at night."
    assert after.model == "qwen" and after.reasons[1:] == ("night",)
    assert after.reasons[0] == (
        "rule decision stands; embedded only summarises (it said alert=false, low)"
    )


def test_a_change_while_the_item_is_busy_is_judged_after(store_engine: Engine) -> None:
    """A material change that arrives while the incident's item is still queued or being
    judged (on older facts) is not lost: the alert is queued again once that judgement is
    done, at the incident's next change."""
    events, alerts, queue = (
        EventRepository(store_engine),
        AlertRepository(store_engine),
        AgentQueue(store_engine),
    )
    now = [0.0]
    rules = RuleAlerts(
        "yard",
        AlertPolicySettings(),
        alerts,
        queue,
        agent_enabled=True,
        rejudge_interval_s=60.0,
        clock=lambda: now[0],
    )
    keeper = IncidentKeeper(
        "yard",
        "e",
        IncidentConfig(dwell_thresholds_s=(30.0,)),
        IncidentRepository(store_engine),
        events,
        on_incident=rules.on_incident,
    )

    def feed(*states: EventState) -> None:
        for s in states:
            events.upsert(s)
        keeper.on_changes([EventChange(EventChangeKind.UPDATED, s) for s in states])

    a = _ev("p", 0, 2)
    feed(a)
    [item] = queue.lease(1, 60.0)  # a worker is judging it on the first facts
    now[0] = 100.0
    feed(_ev("q", 1, 2, label="car"))  # material: a new label, but the item is leased
    assert (queue.status(a.id) or ("",))[0] == "leased"
    assert queue.complete(str(item), "done", token=item.token)
    now[0] = 102.0
    feed(replace(a, last_seen_at=T0 + timedelta(seconds=3)))  # too soon after the busy try
    assert (queue.status(a.id) or ("",))[0] == "done"
    now[0] = 106.0
    feed(replace(a, last_seen_at=T0 + timedelta(seconds=4)))  # any later change re-queues it
    assert (queue.status(a.id) or ("",))[0] == "pending"
    assert alerts.by_event(a.id).llm_status == "pending"  # type: ignore[union-attr]
