"""Alert decisions: the shapes the rules and the LLM agent produce and the store keeps."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class DecidedBy(StrEnum):
    RULES = "rules"
    LLM = "llm"


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """What a decider concluded about one event."""

    alert: bool
    severity: Severity
    summary: str
    reasons: tuple[str, ...]
    recommended_action: str
    decided_by: DecidedBy
    prompt_version: str | None = None
    model: str | None = None
    backend: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    parse_failures: int = 0


@dataclass(frozen=True, slots=True)
class EventContext:
    """Everything the agent may look at to judge one event (all grounded facts)."""

    event_id: str
    camera_id: str
    camera_name: str
    camera_description: str
    label: str
    score: float
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    local_time: str
    dwell_s: float
    path_summary: str
    recent_events: tuple[str, ...] = ()
    site_notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # The incident judged, when the context describes one (its members in ``path_summary``).
    incident_id: str | None = None

    def variables(self) -> dict[str, str]:
        """The template variables a prompt may use (all strings)."""
        return {
            "event_id": self.event_id,
            "camera_id": self.camera_id,
            "camera_name": self.camera_name,
            "camera_description": self.camera_description,
            "label": self.label,
            "score": f"{self.score:.2f}",
            "started_at": self.started_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else "still in view",
            "local_time": self.local_time,
            "dwell_s": f"{self.dwell_s:.0f}",
            "path_summary": self.path_summary,
            "recent_events": "\n".join(self.recent_events) or "none",
            "site_notes": self.site_notes or "none",
            **self.extra,
        }


PROMPT_VARIABLES: frozenset[str] = frozenset(
    {
        "event_id",
        "camera_id",
        "camera_name",
        "camera_description",
        "label",
        "score",
        "started_at",
        "last_seen_at",
        "ended_at",
        "local_time",
        "dwell_s",
        "path_summary",
        "recent_events",
        "site_notes",
    }
)


@dataclass(frozen=True)
class PromptSpec:
    name: str
    version: str
    system: str
    template: str


@dataclass(frozen=True)
class AgentOutcome:
    """The agent's answer: a decision, or None with why (the rule decision then stands)."""

    decision: AlertDecision | None
    error: str | None = None
    parse_failures: int = 0
    backend: str | None = None
    transient: bool = False  # no backend answered (timeouts, outages): worth a later retry
    # The backend only summarises: its alert and severity are advice, the rule decision stands.
    advisory: bool = False


def advisory_decision(decision: AlertDecision, severity: Severity) -> AlertDecision:
    """A summarising backend's answer applied to a rule alert: the rule decision (an alert at
    ``severity``) stands, described in the backend's words; its own verdict is kept as the
    first reason, for the record."""
    said = f"alert={str(decision.alert).lower()}, {decision.severity.value}"
    note = (
        f"rule decision stands; {decision.backend or 'the model'} only summarises (it said {said})"
    )
    return replace(
        decision,
        alert=True,
        severity=severity,
        decided_by=DecidedBy.RULES,
        reasons=(note, *decision.reasons),
    )
