"""RuleGen suggestions as stored and decided, Ray-free and store-free.

What the suggestion repository and the API need beyond :mod:`sentinel.rules.rulegen`:

- :func:`draft`: a :class:`~sentinel.rules.rulegen.Suggestion` as the row to store: its kind,
  camera, proposal (JSON), backtest figures (JSON), reason and **dedupe key**;
- :func:`dedupe_key`: what makes two suggestions "the same" across runs: the kind and what it
  proposes (camera, label, region or hours, rule and score), never its figures, so a re-run
  refreshes the figures of an open suggestion instead of adding a second one;
- :func:`upsert_action` and :func:`decide`: the status machine, ``suggested`` to ``accepted``
  or ``rejected`` and nothing else;
- :func:`proposed_rule`, :func:`tightened` and :func:`object_mask`: what accepting one does
  (a new rule, a rule's next version, the object mask to add to the camera);
- :func:`rule_filter`: any stored rule as the :class:`~sentinel.rules.backtest.RuleFilter` a
  backtest runs, with notes on what the history cannot tell.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sentinel.domain.rule_model import (
    ALL_DAYS,
    Conditions,
    HourRange,
    Rule,
    Schedule,
    new_rule_id,
    rule_to_dict,
)
from sentinel.domain.scene import SceneEventKind
from sentinel.rules import backtest as bt
from sentinel.rules.mining import (
    HOURS_PER_WEEK,
    MaskSuggestion,
    RuleSuggestion,
    TighteningSuggestion,
)
from sentinel.rules.rulegen import Suggestion

__all__ = [
    "ACCEPTED",
    "DECISIONS",
    "KINDS",
    "REJECTED",
    "STATUSES",
    "SUGGESTED",
    "Draft",
    "NotOpen",
    "backtest_json",
    "decide",
    "dedupe_key",
    "draft",
    "object_mask",
    "proposed_rule",
    "rule_filter",
    "rule_for",
    "tightened",
    "upsert_action",
]

SUGGESTED = "suggested"
ACCEPTED = "accepted"
REJECTED = "rejected"
STATUSES = (SUGGESTED, ACCEPTED, REJECTED)
DECISIONS = (ACCEPTED, REJECTED)
KINDS = ("mask", "rule", "tightening")
UpsertAction = Literal["insert", "update", "keep"]


class NotOpen(Exception):  # noqa: N818 - named for what happened, like AlreadyDecided
    """The suggestion was decided already: only a "suggested" one can be accepted or rejected."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the suggestion is {status}; only a suggested one can be decided")
        self.status = status


def decide(current: str, decision: str) -> str:
    """The status after ``decision`` ("accepted" or "rejected") of a suggestion in ``current``.

    Raises:
        ValueError: If ``decision`` or ``current`` is not a status.
        NotOpen: If ``current`` is not "suggested".
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {list(DECISIONS)}, but got {decision!r}")
    if current not in STATUSES:
        raise ValueError(f"status must be one of {list(STATUSES)}, but got {current!r}")
    if current != SUGGESTED:
        raise NotOpen(current)
    return decision


def upsert_action(existing_status: str | None) -> UpsertAction:
    """What a RuleGen run does with a suggestion whose dedupe key has a row in
    ``existing_status`` (None: no row): insert it, update the open row's figures, or keep the
    decided row as it is (an operator said yes or no to it: it is not suggested again)."""
    if existing_status is None:
        return "insert"
    if existing_status not in STATUSES:
        raise ValueError(f"status must be one of {list(STATUSES)}, but got {existing_status!r}")
    return "update" if existing_status == SUGGESTED else "keep"


@dataclass(frozen=True, slots=True)
class Draft:
    """A suggestion as the row to store.

    Attributes:
        kind: "mask", "rule" or "tightening".
        camera_id: The camera it is about; None for a tightening (a rule may cover several).
        dedupe_key: Same proposal, same key (sha256 hex), whatever the figures.
        proposal: What it proposes, JSON-ready (see :func:`draft`).
        backtest: :func:`backtest_json` of what it would have done over the history.
        reason: Why, in one sentence for the operator.
    """

    kind: str
    camera_id: str | None
    dedupe_key: str
    proposal: dict[str, Any]
    backtest: dict[str, Any]
    reason: str


def _round(value: float) -> float:
    return round(float(value), 6)


def dedupe_key(kind: str, identity: Mapping[str, Any]) -> str:
    """The key of a proposal: sha256 of its kind and identity as canonical JSON."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, but got {kind!r}")
    text = json.dumps([kind, dict(identity)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def backtest_json(result: bt.BacktestResult) -> dict[str, Any]:
    """The figures as JSON: ``matched`` (a rule's alerts, a mask's dropped detections),
    ``per_day``, ``days``, the verdict counts, ``precision``, ``recall`` and ``cpu_share``
    (None where undefined; never NaN)."""
    out: dict[str, Any] = asdict(result)
    for name, value in out.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[name] = None
    return out


def object_mask(mask: MaskSuggestion) -> dict[str, Any]:
    """The object mask to add to the camera's ``object_masks`` (``ObjectMaskConfig``'s JSON)."""
    return {"polygon": [[_round(x), _round(y)] for x, y in mask.polygon], "labels": [mask.label]}


def _hhmm(hour: int) -> str:
    return f"{hour:02d}:00"


def rule_for(suggestion: RuleSuggestion, timezone: str) -> Rule:
    """The alert rule a rule suggestion proposes: the label seen on the camera (entering the
    zone, when it names one) from ``start_hour`` to ``end_hour`` local time every day.

    Its id is a placeholder: :func:`proposed_rule` gives the accepted rule a fresh one.
    """
    zone = suggestion.zone or None
    conditions = Conditions(
        labels=(suggestion.label,),
        event=SceneEventKind.ENTER if zone else SceneEventKind.SEEN,
        zone=zone,
    )
    if suggestion.start_hour == suggestion.end_hour:  # mining's whole-day run: always
        schedule = None
        hours = "all day"
    else:
        start, end = _hhmm(suggestion.start_hour), _hhmm(suggestion.end_hour)
        schedule = Schedule(
            days=ALL_DAYS,
            hours=(HourRange(start=start, end="24:00" if end == "00:00" else end),),
            timezone=timezone,
        )
        hours = f"{start}\u2013{end}"
    where = f" in {zone}" if zone else ""
    return Rule(
        id="suggested",
        name=f"{suggestion.label}{where} on {suggestion.camera_id} {hours}"[:200],
        cameras=(suggestion.camera_id,),
        conditions=conditions,
        schedule=schedule,
    )


def proposed_rule(proposal: Mapping[str, Any], rule_id: str | None = None) -> Rule:
    """The rule a stored rule proposal becomes on acceptance, with a fresh id at version 1.

    Raises:
        pydantic.ValidationError: If the stored rule is not a valid rule (any more).
        KeyError: If ``proposal`` holds no rule.
    """
    body = {**proposal["rule"], "id": rule_id or new_rule_id(), "version": 1}
    return Rule.model_validate(body)


def tightened(rule: Rule, min_score: float) -> Rule:
    """``rule`` with its minimum score raised to ``min_score`` (never lowered)."""
    score = max(rule.conditions.min_score, float(min_score))
    conditions = rule.conditions.model_copy(update={"min_score": score})
    return rule.model_copy(update={"conditions": conditions})


def draft(suggestion: Suggestion, *, timezone: str = "UTC") -> Draft:
    """A RuleGen suggestion as the row to store.

    Proposals by kind:
        mask: ``camera_id``, ``label``, ``polygon`` (normalised corners), ``object_mask`` (what
            to add to the camera config) and mining's counts;
        rule: ``rule`` (the proposed rule's JSON, without id and version), ``zone``,
            ``label``, ``start_hour``, ``end_hour``, ``events_per_week``;
        tightening: ``rule_id``, ``min_score`` and mining's counts.
    """
    figures = backtest_json(suggestion.backtest)
    found = suggestion.suggestion
    if isinstance(found, MaskSuggestion):
        polygon = [[_round(x), _round(y)] for x, y in found.polygon]
        identity: dict[str, Any] = {
            "camera_id": found.camera_id,
            "label": found.label,
            "polygon": polygon,
        }
        proposal: dict[str, Any] = {
            **identity,
            "object_mask": object_mask(found),
            "false_positives": found.false_positives,
            "true_positives_lost": found.true_positives_lost,
            "detections_share": found.detections_share,
        }
        reason = (
            f"operators marked {found.false_positives} {found.label} detections here as false "
            f"alarms; masking it drops {found.detections_share:.0%} of the camera's detections "
            f"and loses {found.true_positives_lost} confirmed sightings"
        )
        return Draft(
            "mask", found.camera_id, dedupe_key("mask", identity), proposal, figures, reason
        )
    if isinstance(found, RuleSuggestion):
        rule = rule_for(found, timezone)
        identity = {
            "camera_id": found.camera_id,
            "zone": found.zone,
            "label": found.label,
            "start_hour": found.start_hour,
            "end_hour": found.end_hour,
            "timezone": timezone,
        }
        proposal = {
            **identity,
            "rule": {k: v for k, v in rule_to_dict(rule).items() if k not in ("id", "version")},
            "events_per_week": found.events_per_week,
        }
        return Draft(
            "rule", found.camera_id, dedupe_key("rule", identity), proposal, figures, found.reason
        )
    if not isinstance(found, TighteningSuggestion):  # pragma: no cover - exhaustive above
        raise TypeError(f"unknown suggestion {type(found).__name__}")
    identity = {"rule_id": found.rule_id, "min_score": _round(found.min_score)}
    proposal = {
        **identity,
        "alerts": found.alerts,
        "false_positives": found.false_positives,
        "false_positives_removed": found.false_positives_removed,
        "true_positives_lost": found.true_positives_lost,
    }
    reason = (
        f"operators judged {found.false_positives} of the rule's {found.alerts} alerts false; "
        f"a minimum score of {found.min_score:.2f} removes {found.false_positives_removed} of "
        f"them and loses {found.true_positives_lost} true ones"
    )
    return Draft("tightening", None, dedupe_key("tightening", identity), proposal, figures, reason)


def _schedule_hours(schedule: Schedule) -> tuple[frozenset[int], bool]:
    """The local hours of the week a schedule touches, and whether that is exact (every range
    on whole hours)."""
    hours: set[int] = set()
    exact = True
    for day in schedule.days:
        for span in schedule.hours:
            start, end = span.start_min, span.end_min
            if end <= start:
                end += 24 * 60  # wraps into the next day, which belongs to this one
            exact = exact and start % 60 == 0 and end % 60 == 0
            first, last = start // 60, -(-end // 60)  # cover every hour the range touches
            hours.update((day.number * 24 + h) % HOURS_PER_WEEK for h in range(first, last))
    return frozenset(hours), exact


def rule_filter(rule: Rule) -> tuple[bt.RuleFilter, list[str]]:
    """What a stored rule reduces to for a backtest over the event history, and notes on
    what the history cannot tell (so the figures are read for what they are).

    The history has one row per tracked object, so every event kind is tried as "the object
    was seen" (in the rule's zone, when it names one: the zones each event was in); the arming
    mode at the time is not recorded (armed throughout).
    """
    c = rule.conditions
    notes: list[str] = []
    if c.event is not SceneEventKind.SEEN:
        notes.append(
            f"the history keeps tracked objects, not {c.event.value} events: "
            "every object the rule's other conditions accept counts"
        )
    if c.zone is not None:
        notes.append(
            f"zone {c.zone!r}: objects that were in it (events stored before zones were "
            "recorded count as in no zone)"
        )
    if c.line is not None or c.direction is not None:
        notes.append("line crossings are not in the history: the line condition is left out")
    if c.min_count > 1:
        notes.append(f"object counts are not in the history: min_count {c.min_count} is left out")
    if not rule.enabled:
        notes.append("the rule is disabled: the figures are what it would do if enabled")
    notes.append("the arming mode is not in the history: the site counts as armed throughout")
    hours: frozenset[int] | None = None
    timezone = "UTC"
    if rule.schedule is not None:
        hours, exact = _schedule_hours(rule.schedule)
        timezone = rule.schedule.timezone
        if not exact:
            notes.append("the schedule is counted in whole hours (every hour it touches)")
    flt = bt.RuleFilter(
        camera_ids=frozenset(rule.cameras),
        labels=frozenset(c.labels),
        zones=frozenset() if c.zone is None else frozenset({c.zone}),
        min_score=c.min_score,
        hours_of_week=hours,
        timezone=timezone,
        min_dwell_s=c.min_dwell_s if c.min_dwell_s > 0 else None,
    )
    return flt, notes
