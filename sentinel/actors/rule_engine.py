"""Operators' rules in the camera loop: each analysed frame's scene events against the rules.

The rules themselves are pure (``sentinel.domain.rules``); this glue keeps a camera's
``RuleSet`` current and turns matches into alerts. A rule change or an arming switch takes
effect on running cameras without a restart: the rules' ``revision`` (one integer, bumped on
every change) is polled every ``poll_s`` seconds and the camera's snapshot reloaded when it
moved. A failure of the rule engine on one frame never stops the camera: it is counted and
reported in the camera's status. Matches whose alert the store refused are kept (bounded) and
written at the next frame, so a database outage loses none of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from sentinel.domain.alerts import AlertDecision, DecidedBy
from sentinel.domain.rules import RuleMatch, RuleSet
from sentinel.domain.scene import SceneEvent
from sentinel.domain.stats import CameraStats
from sentinel.store.alert_repo import AgentQueue, AlertRepository
from sentinel.store.rule_repo import RuleSnapshot

logger = logging.getLogger(__name__)
_MAX_UNSTORED = 1000  # matches kept while the store is down; the oldest go first past it
_FORGET_EVERY = 500  # frames between sweeps of expired cooldowns


class RuleSource(Protocol):
    """Where a camera's rules come from (``RuleRepository``)."""

    def revision(self) -> int: ...

    def snapshot(self, camera_id: str) -> RuleSnapshot: ...


class CameraRules:
    """One camera's rules: evaluated on every analysed frame, reloaded when they change.

    Args:
        camera_id: The camera.
        stats: The camera's stats: rule counters and the last error are reported there.
        source: The rules' store.
        alerts: Where alerts are written.
        queue: The LLM agent's queue (new rule alerts are judged too when the agent is on).
        agent_enabled: Whether the LLM agent judges alerts.
        incident_of: The open incident an event belongs to, if any (one alert per incident).
        poll_s: How often the rules' revision is checked.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        camera_id: str,
        stats: CameraStats,
        source: RuleSource,
        alerts: AlertRepository,
        queue: AgentQueue,
        *,
        agent_enabled: bool,
        incident_of: Callable[[str], str | None] | None = None,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.source = source
        self.alerts = alerts
        self.queue = queue
        self.agent_enabled = agent_enabled
        self.incident_of = incident_of
        self.poll_s = poll_s
        self.clock = clock
        self.ruleset: RuleSet | None = None
        self.stats = stats
        self.counters = stats.counters
        self.revision: int | None = None
        self.frames = 0
        self._checked_at: float | None = None
        self._unstored: list[RuleMatch] = []

    # -- on the event loop: cheap, pure ---------------------------------------------------

    def refresh_due(self) -> bool:
        return self._checked_at is None or self.clock() - self._checked_at >= self.poll_s

    def evaluate(self, events: Sequence[SceneEvent]) -> list[RuleMatch]:
        """The frame's matches; a failing rule engine counts the failure and matches nothing."""
        if self.ruleset is None or not events:
            return []
        self.frames += 1
        try:
            matches = self.ruleset.evaluate(events)
        except Exception as exc:  # one bad frame or rule must never stop the camera
            self.counters.rule_failures += 1
            self.stats.last_error = f"rules: {exc}"[:500]
            logger.exception("camera %s: rule evaluation failed", self.camera_id)
            return []
        self.counters.rule_matches += len(matches)
        if self.frames % _FORGET_EVERY == 0:  # bounded cooldown memory on a busy camera
            self.ruleset.forget_before(events[-1].at)
        return matches

    @property
    def has_unstored(self) -> bool:
        return bool(self._unstored)

    # -- on a worker thread: database ------------------------------------------------------

    def refresh(self) -> None:
        """Reload the camera's rules and arming mode if their revision moved."""
        self._checked_at = self.clock()
        revision = self.source.revision()
        if self.ruleset is not None and revision == self.revision:
            return
        snapshot = self.source.snapshot(self.camera_id)
        self.ruleset = (
            RuleSet(snapshot.rules, snapshot.mode)
            if self.ruleset is None
            else self.ruleset.updated(snapshot.rules, snapshot.mode)
        )
        self.revision = snapshot.revision
        logger.info(
            "camera %s: %d rule(s), mode %s (revision %d)",
            self.camera_id,
            len(snapshot.rules),
            snapshot.mode,
            snapshot.revision,
        )

    def record(self, matches: Sequence[RuleMatch]) -> None:
        """Write an alert per match (kept for the next try if the store refuses it)."""
        pending = [*self._unstored, *matches]
        self._unstored = []
        for index, match in enumerate(pending):
            try:
                self._alert(match)
            except Exception as exc:
                self._unstored = pending[index:][-_MAX_UNSTORED:]
                self.stats.last_error = f"store: {exc}"[:500]
                raise

    def _alert(self, match: RuleMatch) -> None:
        event = match.event
        if event.event_id is None:  # an object not yet an event: nothing to alert on
            return
        explanation = match.explanation()
        decision = AlertDecision(
            alert=True,
            severity=match.severity,
            summary=explanation,
            reasons=tuple(f"{r.condition}: {r.detail}" for r in match.reasons if r.ok),
            recommended_action="Check the camera: an operator's rule matched.",
            decided_by=DecidedBy.RULES,
        )
        incident = self.incident_of(event.event_id) if self.incident_of is not None else None
        existing = (
            self.alerts.by_incident(incident) if incident is not None else None
        ) or self.alerts.by_event(event.event_id)
        record = existing or self.alerts.record_rule_decision(
            event.event_id,
            event.camera_id,
            event.label,
            decision,
            incident_id=incident,
            llm_status="pending" if self.agent_enabled else "skipped",
        )
        self.alerts.attach_rule(record.id, match.rule_id, match.rule_version, explanation)
        if existing is None:
            self.counters.rule_alerts += 1
            if self.agent_enabled:
                self.queue.enqueue(record.event_id)
