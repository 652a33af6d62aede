"""Parsing the alert agent's answer: the first JSON object in the text, strictly checked.

Small models wrap answers in code fences or put a sentence before them, so the parser looks
for the first ``{`` that starts a complete JSON object anywhere in the text. What it finds is
then validated field by field; every rejection names the field and what was wrong, because
those messages end up in parse-failure counts that decide which prompt variant wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sentinel.domain.alerts import Severity

MAX_SCAN_CHARS = 20_000
MAX_CANDIDATES = 64  # bounds the work on hostile output full of braces
MAX_SUMMARY_CHARS = 2_000
MAX_REASONS = 10
MAX_REASON_CHARS = 300
MAX_ACTION_CHARS = 500

_REQUIRED = ("alert", "severity", "summary", "reasons", "recommended_action")
_DECODER = json.JSONDecoder()


class DecisionParseError(ValueError):
    """The model's output holds no valid decision; the message says precisely why."""


@dataclass(frozen=True, slots=True)
class ParsedDecision:
    """A decision as the model stated it, already validated."""

    alert: bool
    severity: Severity
    summary: str
    reasons: tuple[str, ...]
    recommended_action: str


def _first_object(text: str) -> dict[str, Any]:
    """Returns the first complete JSON object in ``text`` (fences and prose are skipped)."""
    scan = text[:MAX_SCAN_CHARS]
    first_error: str | None = None
    start = scan.find("{")
    for _ in range(MAX_CANDIDATES):
        if start == -1:
            break
        try:
            value, _ = _DECODER.raw_decode(scan, start)
        except json.JSONDecodeError as exc:
            first_error = first_error or f"{exc.msg} (character {exc.pos})"
        except RecursionError:  # absurdly nested input: not an answer
            first_error = first_error or f"nesting too deep (character {start})"
        else:
            if isinstance(value, dict):
                return value
        start = scan.find("{", start + 1)
    if first_error is None:
        raise DecisionParseError("no JSON object in the output")
    raise DecisionParseError(
        f"no complete JSON object in the output (truncated or invalid JSON: {first_error})"
    )


def _text(obj: dict[str, Any], key: str, limit: int, *, non_empty: bool) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise DecisionParseError(f"{key!r} must be a string, but got {type(value).__name__}")
    value = value.strip()
    if non_empty and not value:
        raise DecisionParseError(f"{key!r} must not be empty")
    if len(value) > limit:
        raise DecisionParseError(f"{key!r} must be at most {limit} characters, got {len(value)}")
    return value


def _reasons(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj["reasons"]
    if not isinstance(value, list):
        raise DecisionParseError(f"'reasons' must be a list, but got {type(value).__name__}")
    if len(value) > MAX_REASONS:
        raise DecisionParseError(
            f"'reasons' must have at most {MAX_REASONS} items, got {len(value)}"
        )
    reasons: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise DecisionParseError(
                f"'reasons'[{i}] must be a string, but got {type(item).__name__}"
            )
        if len(item) > MAX_REASON_CHARS:
            raise DecisionParseError(
                f"'reasons'[{i}] must be at most {MAX_REASON_CHARS} characters, got {len(item)}"
            )
        if item.strip():
            reasons.append(item.strip())
    return tuple(reasons)


def parse_decision(text: str) -> ParsedDecision:
    """Extracts and validates the decision in a model's output.

    Unknown extra keys are ignored; severity is matched case-insensitively; strings are
    stripped and blank reasons dropped. Everything else is strict: ``alert`` must be a JSON
    boolean (not ``"true"``), and lengths are bounded.

    Args:
        text: Raw model output, possibly with code fences or prose around the object.

    Returns:
        The validated decision.

    Raises:
        DecisionParseError: If no complete JSON object is found or a field is missing or invalid.
    """
    obj = _first_object(text)
    missing = [key for key in _REQUIRED if key not in obj]
    if missing:
        raise DecisionParseError(f"missing fields: {', '.join(missing)}")
    alert = obj["alert"]
    if not isinstance(alert, bool):
        raise DecisionParseError(f"'alert' must be true or false, but got {alert!r}")
    severity = obj["severity"]
    allowed = ", ".join(s.value for s in Severity)
    if not isinstance(severity, str) or severity.strip().lower() not in {s.value for s in Severity}:
        raise DecisionParseError(f"'severity' must be one of {allowed}, but got {severity!r}")
    return ParsedDecision(
        alert=alert,
        severity=Severity(severity.strip().lower()),
        summary=_text(obj, "summary", MAX_SUMMARY_CHARS, non_empty=True),
        reasons=_reasons(obj),
        recommended_action=_text(obj, "recommended_action", MAX_ACTION_CHARS, non_empty=False),
    )


# The decision's JSON schema, sent as ``response_format`` so a backend that supports
# constrained decoding (llama.cpp, vLLM, OpenAI) can only produce a parseable answer. The
# length limits keep a small model from looping inside a string until it runs out of tokens
# (measured: without them Qwen2.5-0.5B repeated itself in "reasons" on 3 of 5 events).
DECISION_JSON_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "alert": {"type": "boolean"},
        "severity": {"type": "string", "enum": ["info", "low", "medium", "high", "critical"]},
        "summary": {"type": "string", "minLength": 10, "maxLength": 500},
        "reasons": {
            "type": "array",
            "items": {"type": "string", "minLength": 3, "maxLength": 150},
            "minItems": 1,
            "maxItems": 3,
        },
        "recommended_action": {"type": "string", "maxLength": 200},
    },
    "required": ["alert", "severity", "summary", "reasons", "recommended_action"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: dict[str, object] = {
    "type": "json_schema",
    "json_schema": {"name": "alert_decision", "schema": DECISION_JSON_SCHEMA},
}
