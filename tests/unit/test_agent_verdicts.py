from __future__ import annotations

import json
from typing import Any

import pytest

from sentinel.domain.alerts import Severity
from sentinel.domain.verdicts import DecisionParseError, ParsedDecision, parse_decision

GOOD: dict[str, Any] = {
    "alert": True,
    "severity": "high",
    "summary": "A person stood by the back door for 4 minutes at 02:14.",
    "reasons": ["person at night", "long dwell"],
    "recommended_action": "Check the back door camera.",
}
EXPECTED = ParsedDecision(
    alert=True,
    severity=Severity.HIGH,
    summary=GOOD["summary"],
    reasons=("person at night", "long dwell"),
    recommended_action="Check the back door camera.",
)


def _with(**changes: Any) -> str:
    return json.dumps({**GOOD, **changes})


def _without(key: str) -> str:
    return json.dumps({k: v for k, v in GOOD.items() if k != key})


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        f"```json\n{json.dumps(GOOD)}\n```",
        f"```\n{json.dumps(GOOD, indent=2)}\n```\n",
        f"Here is my answer:\n{json.dumps(GOOD)}\nHope this helps!",
        f"I think {{this}} is suspicious. {json.dumps(GOOD)}",
        f"{json.dumps(GOOD)} {json.dumps({**GOOD, 'alert': False})}",
        _with(severity=" HIGH "),
        _with(extra_key="ignored"),
        _with(reasons=["person at night", "  ", "long dwell"]),
    ],
)
def test_parse_accepts(text: str) -> None:
    assert parse_decision(text) == EXPECTED


def test_parse_allows_empty_reasons_and_action() -> None:
    parsed = parse_decision(_with(alert=False, severity="info", reasons=[], recommended_action=""))
    assert (parsed.alert, parsed.severity, parsed.reasons, parsed.recommended_action) == (
        False,
        Severity.INFO,
        (),
        "",
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no JSON object"),
        ("I cannot decide.", "no JSON object"),
        ("[1, 2, 3]", "no JSON object"),
        (json.dumps(GOOD)[:60], "truncated or invalid JSON"),
        ('{"alert": true, "severity": "high", "summary": "A pers', "truncated or invalid JSON"),
        ("{'alert': True}", "truncated or invalid JSON"),
        (_with(severity="urgent"), "'severity' must be one of info, low, medium, high, critical"),
        (_with(severity=3), "'severity' must be one of"),
        (_without("severity"), "missing fields: severity"),
        (json.dumps({"alert": True}), "missing fields: severity, summary, reasons"),
        (_with(alert="true"), "'alert' must be true or false, but got 'true'"),
        (_with(alert=1), "'alert' must be true or false, but got 1"),
        (_with(summary=""), "'summary' must not be empty"),
        (_with(summary="   "), "'summary' must not be empty"),
        (_with(summary=["a"]), "'summary' must be a string, but got list"),
        (_with(summary="x" * 2001), "'summary' must be at most 2000 characters, got 2001"),
        (_with(reasons="long dwell"), "'reasons' must be a list, but got str"),
        (_with(reasons=["ok", 5]), r"'reasons'\[1\] must be a string, but got int"),
        (_with(reasons=["r"] * 11), "'reasons' must have at most 10 items, got 11"),
        (_with(reasons=["x" * 301]), r"'reasons'\[0\] must be at most 300 characters"),
        (_with(recommended_action=None), "'recommended_action' must be a string"),
        (_with(recommended_action="x" * 501), "'recommended_action' must be at most 500"),
    ],
)
def test_parse_rejects(text: str, error: str) -> None:
    with pytest.raises(DecisionParseError, match=error):
        parse_decision(text)


def test_parse_survives_hostile_nesting() -> None:
    with pytest.raises(DecisionParseError, match="truncated or invalid JSON"):
        parse_decision('{"a":' * 10_000)
