"""The rule-based first decision, made as incidents (or events) are written; the LLM follows.

A camera's policy (labels, armed hours, minimum dwell) turns an incident into one alert at once
(``on_incident``: the first member the policy alerts on decides) — or, called with events, an
event into an alert. The alert and its queue item are written idempotently, so a replayed
change or a restarted actor never makes a second alert or a second queue item. A material
change of an alerted incident (a new label, a member's dwell past a threshold) queues its
alert for the agent again, at most once per ``rejudge_interval_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sentinel.config import AlertPolicySettings
from sentinel.domain.alerts import EventContext, Severity
from sentinel.domain.incident_context import incident_rule_decision
from sentinel.domain.incidents import IncidentChange
from sentinel.domain.policy import AlertPolicy, rule_decision
from sentinel.domain.types import EventState
from sentinel.store.alert_repo import AgentQueue, AlertRepository

logger = logging.getLogger(__name__)
_BUSY_RETRY_S = 5.0  # how often a re-judgement waits on an item still queued or being judged


def policy_of(settings: AlertPolicySettings) -> AlertPolicy:
    return AlertPolicy(
        labels=frozenset(settings.labels),
        armed_hours=tuple(tuple(r) for r in settings.armed_hours)  # type: ignore[misc]
        if settings.armed_hours
        else None,
        min_dwell_s=settings.min_dwell_s,
        severity=Severity(settings.severity),
    )


class RuleAlerts:
    """Called with every event change of one camera; alerts once per event."""

    def __init__(
        self,
        camera_id: str,
        settings: AlertPolicySettings,
        alerts: AlertRepository,
        queue: AgentQueue,
        *,
        agent_enabled: bool,
        timezone: str = "UTC",
        rejudge_interval_s: float = 60.0,
        camera_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.enabled = settings.enabled
        self.policy = policy_of(settings)
        self.alerts = alerts
        self.queue = queue
        self.agent_enabled = agent_enabled
        self.tz = ZoneInfo(timezone)
        self.rejudge_interval_s = rejudge_interval_s
        self.camera_name = camera_name or camera_id
        self.clock = clock
        self._decided: set[str] = set()
        self._incident_alert: dict[str, str] = {}  # incident id -> its alert's event id
        self._queued_at: dict[str, float] = {}  # incident id -> when last queued for the agent
        # Incidents whose material change came while their item was still waiting or being
        # judged on older facts: queued again as soon as that judgement is done.
        self._rejudge_due: set[str] = set()
        self._tried_at: dict[str, float] = {}  # incident id -> last requeue that found it busy

    def on_incident(self, change: IncidentChange) -> None:
        """Alert once per incident when the policy says so; re-queue it on material change."""
        if not self.enabled:
            return
        incident = change.incident
        alert_event = self._incident_alert.get(incident.id)
        if alert_event is None and incident.previous_id is not None:
            # A continuation keeps the alert of the incident it continues.
            alert_event = self._incident_alert.get(incident.previous_id)
            if alert_event is None:
                previous = self.alerts.by_incident(incident.previous_id)
                alert_event = previous.event_id if previous is not None else None
            if alert_event is not None:
                self._incident_alert[incident.id] = alert_event
                self._queued_at.setdefault(incident.id, self.clock())
        if alert_event is None:
            self._first_alert(change)
        elif (change.material or incident.id in self._rejudge_due) and self.agent_enabled:
            self._rejudge(incident.id, alert_event)

    def _first_alert(self, change: IncidentChange) -> None:
        incident = change.incident
        decided = incident_rule_decision(
            self.policy, incident, change.members, camera_name=self.camera_name, tz=self.tz
        )
        if decided is None:
            return
        member_id, decision = decided
        label = next(m.label for m in change.members if m.id == member_id)
        try:
            record = self.alerts.record_rule_decision(
                member_id,
                incident.camera_id,
                label,
                decision,
                incident_id=incident.id,
                llm_status="pending" if self.agent_enabled else "skipped",
            )
        except ValueError as exc:  # the member's alert belongs to another incident
            logger.warning(
                "camera %s: no alert for incident %s: %s", self.camera_id, incident.id, exc
            )
            return
        self._incident_alert[incident.id] = record.event_id
        if self.agent_enabled:
            self.queue.enqueue(record.event_id)
            self._queued_at[incident.id] = self.clock()

    def _rejudge(self, incident_id: str, alert_event: str) -> None:
        now = self.clock()
        last = self._queued_at.get(incident_id)
        if last is not None and now - last < self.rejudge_interval_s:
            self._rejudge_due.add(incident_id)  # not yet: at a later change of the incident
            return
        tried = self._tried_at.get(incident_id)
        if tried is not None and now - tried < _BUSY_RETRY_S:
            return  # its item was busy a moment ago: not a database write per frame
        self._tried_at[incident_id] = now
        if self.queue.requeue(alert_event):
            self.alerts.set_llm_status(alert_event, "pending")
            self._rejudge_due.discard(incident_id)
            self._queued_at[incident_id] = now
        else:  # still pending or leased: its judgement predates this change
            self._rejudge_due.add(incident_id)

    def __call__(self, event: EventState) -> None:
        if not self.enabled or event.id in self._decided:
            return
        local = event.started_at.astimezone(self.tz)
        ctx = EventContext(
            event_id=event.id,
            camera_id=event.camera_id,
            camera_name=event.camera_id,
            camera_description="",
            label=event.label,
            score=event.score,
            started_at=event.started_at,
            last_seen_at=event.last_seen_at,
            ended_at=event.ended_at,
            local_time=local.isoformat(),
            dwell_s=(event.last_seen_at - event.started_at).total_seconds(),
            path_summary="",
        )
        decision = rule_decision(self.policy, ctx, local.hour)
        if decision is None:
            return
        self.alerts.record_rule_decision(event.id, event.camera_id, event.label, decision)
        if self.agent_enabled:
            self.queue.enqueue(event.id)
        else:
            self.alerts.set_llm_status(event.id, "skipped")
        self._decided.add(event.id)
