"""Who decides: a backend configured to decide, or one that only summarises the rule alert."""

from __future__ import annotations

import pytest

from sentinel.agent.alert_agent import BackendConfig
from sentinel.config import BackendSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity, advisory_decision


@pytest.mark.parametrize(
    ("kind", "authority", "decides"),
    [
        ("embedded", None, False),  # measured below the rules' F1: summarises by default
        ("openai", None, True),
        ("embedded", "decide", True),
        ("openai", "summarise", False),
    ],
)
def test_authority_defaults_by_kind(kind: str, authority: str | None, decides: bool) -> None:
    extra = {"base_url": "http://127.0.0.1:9/v1"} if kind == "openai" else {}
    settings = BackendSettings(name="b", kind=kind, authority=authority, **extra)
    assert settings.decides is decides
    assert BackendConfig.from_settings(settings).decides is decides


def test_authority_is_validated() -> None:
    with pytest.raises(ValueError, match="authority"):
        BackendSettings(name="b", kind="embedded", authority="veto")


def test_advisory_decision_keeps_the_rule_verdict() -> None:
    said = AlertDecision(
        alert=False,
        severity=Severity.INFO,
        summary="Two people walked across the plaza.",
        reasons=("daytime", "public plaza"),
        recommended_action="None.",
        decided_by=DecidedBy.LLM,
        backend="embedded",
        model="qwen",
    )
    kept = advisory_decision(said, Severity.HIGH)
    assert kept.alert and kept.severity is Severity.HIGH and kept.decided_by is DecidedBy.RULES
    assert kept.summary == said.summary and kept.model == "qwen"
    assert kept.reasons == (
        "rule decision stands; embedded only summarises (it said alert=false, info)",
        "daytime",
        "public plaza",
    )
