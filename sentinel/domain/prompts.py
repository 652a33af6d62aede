"""Prompt templates for the alert agent: validated when saved, rendered without surprises.

Templates use a strict subset of :py:meth:`str.format` syntax: only plain ``{name}``
placeholders and the ``{{`` / ``}}`` escapes. Positional fields, attribute or index access,
format specs and conversions are rejected, so a template can neither reach into objects nor
fail at render time on a spec it did not expect. Values are inserted verbatim: a camera name
containing ``{x}`` stays literal text and is never formatted again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from string import Formatter

from sentinel.domain.alerts import PROMPT_VARIABLES

MAX_TEMPLATE_CHARS = 20_000

_FORMATTER = Formatter()


class PromptError(ValueError):
    """A prompt template is malformed, uses unknown variables, or lacks a value at render."""


def _parts(template: str) -> Iterator[tuple[str, str | None]]:
    """Yields ``(literal, placeholder)`` pairs; rejects everything but plain ``{name}``."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:  # unbalanced or stray braces
        raise PromptError(f"malformed template: {exc} (write {{{{ and }}}} for braces)") from None
    for literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            yield literal, None
            continue
        shown = "{" + field_name + "}"
        if field_name == "" or field_name.isdigit():
            raise PromptError(f"positional placeholder {shown} is not allowed; name it")
        if not field_name.isidentifier():
            raise PromptError(
                f"placeholder {shown} must be a plain name (no attribute or index access)"
            )
        if conversion is not None or format_spec:
            raise PromptError(
                f"placeholder {{{field_name}}} must not have a conversion or format spec"
            )
        yield literal, field_name


def template_variables(template: str) -> set[str]:
    """Returns the variable names a template uses.

    Args:
        template: Template text in the plain ``{name}`` subset of format syntax.

    Returns:
        The set of placeholder names.

    Raises:
        PromptError: If the template has malformed braces or a non-plain placeholder.
    """
    return {name for _, name in _parts(template) if name is not None}


def validate_template(template: str, allowed: frozenset[str] = PROMPT_VARIABLES) -> None:
    """Checks a template when it is saved, so a bad variable fails now and not at 3 a.m.

    Args:
        template: Template text to check.
        allowed: Variable names the template may use.

    Raises:
        PromptError: If the template is empty, longer than ``MAX_TEMPLATE_CHARS``, malformed,
            or uses variables outside ``allowed`` (all unknown names are listed).
    """
    if not template.strip():
        raise PromptError("template is empty")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise PromptError(
            f"template must be at most {MAX_TEMPLATE_CHARS} characters, but got {len(template)}"
        )
    unknown = template_variables(template) - allowed
    if unknown:
        raise PromptError(
            f"unknown template variables: {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def render(template: str, variables: Mapping[str, str]) -> str:
    """Fills a template's placeholders with values, inserted verbatim.

    Args:
        template: Template text in the plain ``{name}`` subset of format syntax.
        variables: Value for each placeholder; extra entries are ignored.

    Returns:
        The rendered text.

    Raises:
        PromptError: If the template is malformed or a placeholder has no value.
    """
    parts = list(_parts(template))
    missing = {name for _, name in parts if name is not None and name not in variables}
    if missing:
        raise PromptError(f"missing values for template variables: {', '.join(sorted(missing))}")
    return "".join(
        literal + (variables[name] if name is not None else "") for literal, name in parts
    )


# The system prompt has no placeholders and no braces, so it reads the same rendered or not.
DEFAULT_SYSTEM_PROMPT = """\
You are the alert triage assistant of a video-surveillance system. A detector has seen \
something on a camera. Decide whether a human operator should be alerted.

Rules:
- Use ONLY the facts you are given. Do not invent people, vehicles, weapons, actions, \
identities or intentions that are not in the facts.
- If the facts are ordinary for this camera and time (see the site notes and recent events), \
do not alert.
- Answer with ONE JSON object and nothing else: no prose before or after, no code fences.
- The object has exactly these keys:
  "alert": true or false
  "severity": one of "info", "low", "medium", "high", "critical"
  "summary": one short paragraph, in plain words, for an operator woken at 3 a.m.: \
what was seen, where, when and for how long
  "reasons": a list of short strings, each one fact that led to your decision
  "recommended_action": one short sentence telling the operator what to do
"""

DEFAULT_USER_TEMPLATE = """\
Facts:
- Reference: {event_id}
- Camera: {camera_name} (id {camera_id})
- What the camera shows: {camera_description}
- Kinds of object detected: {label} (highest detector confidence {score})
- First seen: {started_at}
- Last seen: {last_seen_at}
- Ended: {ended_at}
- Local time at the site: {local_time}
- Time in view: {dwell_s} seconds
- The objects and how they moved:
{path_summary}
- Site notes: {site_notes}
- Earlier activity on this camera:
{recent_events}

Decide whether an operator must look at this now; routine activity that the site notes \
expect at this local time is no reason to alert.
Reply with only the JSON object. The summary is one or two sentences in your own words: what \
was seen, where and when, using only the facts above.
"""
