"""The rule-based first decision, made as events are written; the LLM verdict follows.

A camera's policy (labels, armed hours, minimum dwell) turns an event into an alert at once;
the alert and its queue item are written idempotently, so a replayed change or a restarted
actor never makes a second alert or a second queue item.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sentinel.config import AlertPolicySettings
from sentinel.domain.alerts import EventContext, Severity
from sentinel.domain.policy import AlertPolicy, rule_decision
from sentinel.domain.types import EventState
from sentinel.store.alert_repo import AgentQueue, AlertRepository


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
    ) -> None:
        self.camera_id = camera_id
        self.enabled = settings.enabled
        self.policy = policy_of(settings)
        self.alerts = alerts
        self.queue = queue
        self.agent_enabled = agent_enabled
        self.tz = ZoneInfo(timezone)
        self._decided: set[str] = set()

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
