"""Message templates: sandboxed Jinja2, validated when saved.

A template has a ``subject`` (email; the first line elsewhere) and a ``body``. They render in a
``SandboxedEnvironment`` with ``StrictUndefined`` (an unknown variable is an error, not an empty
string) and may use only the variables of ``VARIABLES``; ``validate`` checks syntax and
variables at save time, so a broken template never reaches a delivery.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from sentinel.notify.subscriptions import AlertView

__all__ = [
    "DEFAULT_TEMPLATES",
    "VARIABLES",
    "RenderedMessage",
    "TemplateError",
    "alert_context",
    "render",
    "validate",
]

VARIABLES = frozenset(
    {
        "alert",  # id, camera_id, label, severity, summary, status, created_at, reasons, ...
        "kind",  # new | update | end | digest
        "snapshot_url",  # signed, expiring
        "clip_url",  # signed, expiring
        "alert_url",
        "count",  # alerts in a digest (1 otherwise)
        "alerts",  # the digest's alerts (a list of the same shape as ``alert``)
        "recipient",
    }
)

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)

DEFAULT_TEMPLATES: dict[str, tuple[str, str]] = {
    "default": (
        "[{{ alert.severity | upper }}] {{ alert.label }} on {{ alert.camera_id }}",
        "{% if count > 1 %}{{ count }} alerts on {{ alert.camera_id }}:\n"
        "{% for a in alerts %}- {{ a.created_at }} {{ a.label }} ({{ a.severity }}): "
        "{{ a.summary }}\n{% endfor %}"
        "{% else %}{{ alert.summary }}\n{% endif %}"
        "Snapshot: {{ snapshot_url }}\nClip: {{ clip_url }}\n",
    ),
    "sms": (
        "{{ alert.label }} on {{ alert.camera_id }}",
        "[{{ alert.severity | upper }}] {% if count > 1 %}{{ count }} alerts on "
        "{{ alert.camera_id }}{% else %}{{ alert.summary | truncate(100) }}{% endif %} "
        "{{ snapshot_url }}",
    ),
}


class TemplateError(ValueError):
    """A template that does not parse, names unknown variables, or fails to render."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    body: str


def validate(subject: str, body: str) -> None:
    """Raises TemplateError listing syntax errors and unknown variables of both parts."""
    problems: list[str] = []
    for part, source in (("subject", subject), ("body", body)):
        try:
            ast = _ENV.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{part}: syntax error on line {exc.lineno}: {exc.message}")
            continue
        unknown = sorted(meta.find_undeclared_variables(ast) - VARIABLES)
        if unknown:
            problems.append(f"{part}: unknown variables {', '.join(unknown)}")
    if problems:
        raise TemplateError(problems)


def alert_context(alert: AlertView) -> dict[str, Any]:
    """The ``alert`` variable: plain values only (nothing with methods reaches a template)."""
    return {
        "id": alert.id,
        "camera_id": alert.camera_id,
        "label": alert.label,
        "severity": str(alert.severity),
        "summary": alert.summary,
        "status": alert.status,
        "created_at": alert.created_at.isoformat(),
        "rule_id": alert.rule_id,
        "incident_id": alert.incident_id,
        "incident_type": alert.incident_type,
        "event_id": alert.event_id,
        "reasons": list(alert.reasons),
        "recommended_action": alert.recommended_action,
    }


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    """A template compiled once per source text (compiling costs more than rendering)."""
    return _ENV.from_string(source)


def render(subject: str, body: str, context: Mapping[str, Any]) -> RenderedMessage:
    """Renders both parts; TemplateError on any failure (an undefined value included)."""
    try:
        out_subject = _compiled(subject).render(context)
        out_body = _compiled(body).render(context)
    except jinja2.TemplateError as exc:  # SecurityError and UndefinedError included
        raise TemplateError([f"render: {type(exc).__name__}: {exc}"]) from exc
    return RenderedMessage(" ".join(out_subject.split())[:998], out_body)
