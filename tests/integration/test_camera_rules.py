"""Operators' rules in the camera loop (``CameraRules``) on real databases, without Ray:
matches become alerts carrying their explanation, rule changes apply without a restart, a
failing rule engine is counted and never raises, and matches survive a store outage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from sentinel.actors.rule_engine import CameraRules
from sentinel.domain.rule_model import ArmingMode, Conditions, Rule
from sentinel.domain.scene import SceneEvent, SceneEventKind
from sentinel.domain.stats import CameraStats
from sentinel.store.alert_repo import AgentQueue, AlertRepository
from sentinel.store.rule_repo import RuleSnapshot

T0 = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)
GATE = Rule(
    id="gate-rule",
    name="Person at the gate",
    conditions=Conditions(labels=("person",), event=SceneEventKind.ENTER, zone="gate"),
)


def enter(track: int, event_id: str | None, at: datetime = T0) -> SceneEvent:
    return SceneEvent(
        kind=SceneEventKind.ENTER,
        camera_id="cam1",
        track_id=track,
        event_id=event_id,
        label="person",
        score=0.8,
        at=at,
        zone="gate",
    )


class Source:
    """The rules' store as the camera sees it: a revision and the camera's snapshot."""

    def __init__(self, rules: tuple[Rule, ...], mode: ArmingMode = ArmingMode.AWAY) -> None:
        self.snap = RuleSnapshot(revision=1, mode=mode, rules=rules)
        self.snapshots = 0

    def set(self, rules: tuple[Rule, ...], mode: ArmingMode = ArmingMode.AWAY) -> None:
        self.snap = RuleSnapshot(revision=self.snap.revision + 1, mode=mode, rules=rules)

    def revision(self) -> int:
        return self.snap.revision

    def snapshot(self, camera_id: str) -> RuleSnapshot:
        self.snapshots += 1
        return self.snap


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(engine: Engine, source: Source, clock: Clock) -> tuple[CameraRules, CameraStats]:
    stats = CameraStats(camera_id="cam1")
    rules = CameraRules(
        "cam1",
        stats,
        source,
        AlertRepository(engine),
        AgentQueue(engine),
        agent_enabled=False,
        poll_s=5.0,
        clock=clock,
    )
    return rules, stats


def test_a_match_becomes_an_alert_with_its_explanation(store_engine: Engine) -> None:
    rules, stats = make(store_engine, Source((GATE,)), Clock())
    rules.refresh()
    matches = rules.evaluate([enter(1, "ev-1"), enter(2, None)])
    assert [m.rule_id for m in matches] == ["gate-rule", "gate-rule"]
    rules.record(matches)  # the object without an event yet raises nothing
    alert = AlertRepository(store_engine).by_event("ev-1")
    assert alert is not None
    assert alert.rule_id == "gate-rule" and alert.rule_version == 1
    assert alert.rule_explanation is not None
    assert "Person at the gate" in alert.rule_explanation
    assert "gate" in alert.summary
    assert alert.llm_status == "skipped"
    assert (stats.counters.rule_matches, stats.counters.rule_alerts) == (2, 1)
    # The cooldown holds on the same track; a replayed record writes no second alert.
    assert rules.evaluate([enter(1, "ev-1", T0 + timedelta(seconds=5))]) == []
    rules.record(matches)
    assert stats.counters.rule_alerts == 1


def test_rule_changes_apply_without_a_restart(store_engine: Engine) -> None:
    source, clock = Source((GATE,)), Clock()
    rules, _ = make(store_engine, source, clock)
    rules.refresh()
    assert len(rules.evaluate([enter(1, "ev-1")])) == 1
    source.set((replace_rule(GATE, enabled=False),))
    assert not rules.refresh_due()  # polled every poll_s, not every frame
    clock.t = 5.0
    assert rules.refresh_due()
    rules.refresh()
    assert rules.evaluate([enter(3, "ev-3", T0 + timedelta(minutes=5))]) == []
    source.set((GATE,), mode=ArmingMode.DISARMED)  # armed modes only, by default
    clock.t = 10.0
    rules.refresh()
    assert rules.evaluate([enter(4, "ev-4", T0 + timedelta(minutes=6))]) == []
    clock.t = 15.0
    rules.refresh()  # same revision: the snapshot is not read again
    assert source.snapshots == 3


def replace_rule(rule: Rule, **changes: object) -> Rule:
    return rule.model_copy(update={**changes, "version": rule.version + 1})


def test_a_failing_rule_engine_is_counted_and_the_frame_goes_on(store_engine: Engine) -> None:
    rules, stats = make(store_engine, Source((GATE,)), Clock())
    rules.refresh()
    naive = replace(enter(1, "ev-1"), at=T0.replace(tzinfo=None))  # the engine refuses it
    assert rules.evaluate([naive]) == []
    assert stats.counters.rule_failures == 1
    assert stats.last_error is not None and stats.last_error.startswith("rules:")


class DownAlerts(AlertRepository):
    """The alert store while the database is down (then back)."""

    down = True

    def by_event(self, event_id: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise ConnectionError("database is down")
        return super().by_event(event_id)


def test_matches_wait_for_the_store_and_are_not_lost(store_engine: Engine) -> None:
    rules, stats = make(store_engine, Source((GATE,)), Clock())
    alerts = DownAlerts(store_engine)
    rules.alerts = alerts
    rules.refresh()
    matches = rules.evaluate([enter(1, "ev-1")])
    with pytest.raises(ConnectionError):
        rules.record(matches)
    assert rules.has_unstored
    alerts.down = False
    rules.record([])
    assert not rules.has_unstored
    assert AlertRepository(store_engine).by_event("ev-1") is not None
    assert stats.counters.rule_alerts == 1
