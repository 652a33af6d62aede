from __future__ import annotations

import pytest

from sentinel.domain.alerts import PROMPT_VARIABLES
from sentinel.domain.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_USER_TEMPLATE,
    MAX_TEMPLATE_CHARS,
    PromptError,
    render,
    template_variables,
    validate_template,
)


@pytest.mark.parametrize(
    ("template", "expected", "error"),
    [
        ("Camera {camera_name} saw {label}", {"camera_name", "label"}, None),
        ("no placeholders", set(), None),
        ("{label} and {label}", {"label"}, None),
        ('JSON like {{"alert": true}} is literal', set(), None),
        ("{{label}} is escaped", set(), None),
        ("{{{label}}}", {"label"}, None),
        ("positional {}", None, "positional"),
        ("numbered {0}", None, "positional"),
        ("attribute {ctx.label}", None, "plain name"),
        ("index {labels[0]}", None, "plain name"),
        ("spec {score:.2f}", None, "format spec"),
        ("conversion {label!r}", None, "conversion"),
        ("stray { brace", None, "malformed"),
        ("stray } brace", None, "malformed"),
    ],
)
def test_template_variables(template: str, expected: set[str] | None, error: str | None) -> None:
    if error is None:
        assert template_variables(template) == expected
    else:
        with pytest.raises(PromptError, match=error):
            template_variables(template)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{camera_name}: {label} at {local_time}", None),
        ("{{escaped}} braces are fine with {label}", None),
        ("{label} {weather}", "unknown template variables: weather;"),
        ("{zz} {aa} {label}", "unknown template variables: aa, zz;"),
        ("{0}", "positional"),
        ("{event.label}", "plain name"),
        ("", "empty"),
        ("   \n", "empty"),
        ("x" * (MAX_TEMPLATE_CHARS + 1), "at most 20000 characters"),
    ],
)
def test_validate_template(template: str, error: str | None) -> None:
    if error is None:
        validate_template(template)
    else:
        with pytest.raises(PromptError, match=error):
            validate_template(template)


def test_validate_template_custom_allowed() -> None:
    validate_template("{weather}", allowed=frozenset({"weather"}))
    with pytest.raises(PromptError, match="unknown template variables: label"):
        validate_template("{label}", allowed=frozenset({"weather"}))


@pytest.mark.parametrize(
    ("template", "variables", "expected", "error"),
    [
        ("{a} and {b}", {"a": "1", "b": "2"}, "1 and 2", None),
        ("{a}", {"a": "1", "unused": "x"}, "1", None),
        ("{{a}} {a}", {"a": "1"}, "{a} 1", None),
        ("{a}", {"a": "{b} {0} {x.y} }{"}, "{b} {0} {x.y} }{", None),
        ("{a}", {"a": "{{b}}"}, "{{b}}", None),
        ("{a} {b} {c}", {"b": "2"}, None, "missing values for template variables: a, c"),
        ("{a.b}", {"a": "1"}, None, "plain name"),
    ],
)
def test_render(
    template: str, variables: dict[str, str], expected: str | None, error: str | None
) -> None:
    if error is None:
        assert render(template, variables) == expected
    else:
        with pytest.raises(PromptError, match=error):
            render(template, variables)


def test_defaults_are_valid_and_use_every_event_variable() -> None:
    validate_template(DEFAULT_SYSTEM_PROMPT)
    validate_template(DEFAULT_USER_TEMPLATE)
    assert template_variables(DEFAULT_SYSTEM_PROMPT) == set()
    assert render(DEFAULT_SYSTEM_PROMPT, {}) == DEFAULT_SYSTEM_PROMPT
    assert template_variables(DEFAULT_USER_TEMPLATE) == PROMPT_VARIABLES
    rendered = render(DEFAULT_USER_TEMPLATE, {name: f"<{name}>" for name in PROMPT_VARIABLES})
    # No example answer in the facts: the 0.5B model copied its values ("alert": true,
    # "medium", "summary": "...") into most answers.
    assert '"alert"' not in rendered and "..." not in rendered
    assert "<camera_name>" in rendered and "{camera_name}" not in rendered
    for key in ("alert", "severity", "summary", "reasons", "recommended_action"):
        assert f'"{key}"' in DEFAULT_SYSTEM_PROMPT
