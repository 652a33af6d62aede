"""What an alert rule says: conditions on scene events, a schedule, arming modes, a cooldown.

A rule is operator input, so it is a strict pydantic model: unknown keys are errors, values are
bounded and frozen, and a stored rule is its JSON (``rule_to_dict`` / ``rule_from_dict``).
The rule engine (``domain/rules.py``) compiles rules into fast matchers; this module only says
what a rule is and what makes one pointless:

- ``never_matches(rule)``: a rule that can match no scene event at all (an empty label list, a
  schedule with no days or hours, a dwell condition on an event kind that has no dwell...);
- ``unknown_zones(rule, zones, lines)``: zone and line names the camera does not define.

Schedules are in the rule's own timezone (an IANA name, ``zoneinfo``), so "22:00 to 06:00
Europe/Berlin" stays 22:00 local across the daylight-saving switches. A range whose end is
before its start wraps past midnight; the hours after midnight belong to the day it started
on (a Friday 22:00-06:00 range covers Saturday 03:00).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from sentinel.domain.alerts import Severity
from sentinel.domain.scene import CrossDirection, SceneEventKind
from sentinel.domain.strict import StrictModel, TimeZoneName

__all__ = [
    "ALL_DAYS",
    "ARMED_MODES",
    "ArmingMode",
    "Conditions",
    "HourRange",
    "Rule",
    "RuleAction",
    "Schedule",
    "Weekday",
    "never_matches",
    "new_rule_id",
    "rule_from_dict",
    "rule_to_dict",
    "unknown_zones",
]

RANGE_DASH = "\u2013"  # en dash: ranges read "22:00 to 06:00" as in print
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
Name = Annotated[str, Field(min_length=1, max_length=64)]


class ArmingMode(StrEnum):
    """The site's arming mode: rules say in which modes they apply."""

    DISARMED = "disarmed"
    HOME = "home"
    AWAY = "away"
    NIGHT = "night"


ARMED_MODES: frozenset[ArmingMode] = frozenset({ArmingMode.HOME, ArmingMode.AWAY, ArmingMode.NIGHT})


class RuleAction(StrEnum):
    """What a matching rule does (notification channels come later)."""

    ALERT = "alert"


class Weekday(StrEnum):
    """Days of the week, Monday first (``Weekday.number`` is ``datetime.weekday()``)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """0 for Monday to 6 for Sunday, as ``datetime.weekday()``."""
        return _DAY_INDEX[self]


_DAY_INDEX: Mapping[Weekday, int] = {d: i for i, d in enumerate(Weekday)}
ALL_DAYS: tuple[Weekday, ...] = tuple(Weekday)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class HourRange(StrictModel):
    """Local ``[start, end)`` as ``"HH:MM"``; ``end`` before ``start`` wraps past midnight."""

    start: str = Field(pattern=_HHMM, description="Local start, HH:MM (00:00-23:59).")
    end: str = Field(pattern=_HHMM, description="Local end (exclusive), HH:MM or 24:00.")

    @model_validator(mode="after")
    def _not_empty(self) -> HourRange:
        if self.start == "24:00":
            raise ValueError("start must be 00:00 to 23:59, but got 24:00")
        if self.start_min == self.end_min % (24 * 60) and self.end != "24:00":
            raise ValueError(
                f"an hour range from {self.start} to {self.end} is empty; "
                "use 00:00 to 24:00 for the whole day"
            )
        return self

    @property
    def start_min(self) -> int:
        """Minutes after local midnight of the start."""
        return _minutes(self.start)

    @property
    def end_min(self) -> int:
        """Minutes after local midnight of the end (1440 for 24:00)."""
        return _minutes(self.end)

    @property
    def wraps(self) -> bool:
        """Whether the range runs past midnight into the next day."""
        return self.end_min < self.start_min

    def __str__(self) -> str:
        return f"{self.start}{RANGE_DASH}{self.end}"


class Schedule(StrictModel):
    """When a rule applies, in local time of ``timezone``."""

    days: tuple[Weekday, ...] = Field(
        ALL_DAYS, max_length=7, description="Days a range may start on; empty = never."
    )
    hours: tuple[HourRange, ...] = Field(
        (HourRange(start="00:00", end="24:00"),),
        max_length=24,
        description="Local hour ranges; empty = never.",
    )
    timezone: TimeZoneName = Field("UTC", description="IANA timezone, e.g. Europe/Berlin.")

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, value: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        return tuple(sorted(set(value), key=lambda d: d.number))

    def describe(self) -> str:
        """``"Mon, Fri 22:00-06:00 Europe/Berlin"`` (an en dash in the range); the days are
        left out when every day counts."""
        hours = ", ".join(str(h) for h in self.hours) or "no hours"
        if set(self.days) == set(ALL_DAYS):
            return f"{hours} {self.timezone}"
        days = ", ".join(d.value.capitalize() for d in self.days) or "no days"
        return f"{days} {hours} {self.timezone}"


class Conditions(StrictModel):
    """What a scene event must be for the rule to match it."""

    labels: tuple[Name, ...] = Field(
        ("person",), max_length=80, description="Object classes that match; empty = none."
    )
    event: SceneEventKind = Field(
        SceneEventKind.ENTER, description="seen, enter, exit, dwell or cross."
    )
    zone: Name | None = Field(None, description="Only this zone (enter/exit/dwell); null = any.")
    line: Name | None = Field(None, description="Only this line (cross); null = any.")
    direction: CrossDirection | None = Field(None, description="Only this crossing side.")
    min_dwell_s: float = Field(0.0, ge=0, le=7 * 86400, description="Seconds in the zone.")
    min_count: int = Field(1, ge=1, le=1000, description="Objects of the label at once.")
    min_score: float = Field(0.0, ge=0, le=1, description="Detector confidence.")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))


def new_rule_id() -> str:
    """A fresh rule id."""
    return str(uuid.uuid4())


class Rule(StrictModel):
    """One alert rule (one version of it: edits bump ``version``)."""

    id: str = Field(default_factory=new_rule_id, min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    cameras: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        (), max_length=256, description="Camera ids it applies to; empty = every camera."
    )
    severity: Severity = Severity.MEDIUM
    conditions: Conditions = Field(default_factory=Conditions)
    schedule: Schedule | None = Field(None, description="When it applies; null = always.")
    modes: tuple[ArmingMode, ...] = Field(
        tuple(sorted(ARMED_MODES)), max_length=4, description="Arming modes it applies in."
    )
    cooldown_s: float = Field(
        60.0, ge=0, le=86400, description="Quiet time per tracked object after a match."
    )
    actions: tuple[RuleAction, ...] = Field((RuleAction.ALERT,), min_length=1, max_length=8)
    version: int = Field(1, ge=1)

    @field_validator("cameras")
    @classmethod
    def _distinct_cameras(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))

    @field_validator("modes")
    @classmethod
    def _distinct_modes(cls, value: tuple[ArmingMode, ...]) -> tuple[ArmingMode, ...]:
        return tuple(sorted(set(value)))

    def applies_to(self, camera_id: str) -> bool:
        """Whether the rule covers ``camera_id`` (an empty camera list covers every camera)."""
        return not self.cameras or camera_id in self.cameras


_ZONE_KINDS = frozenset({SceneEventKind.ENTER, SceneEventKind.EXIT, SceneEventKind.DWELL})
_DWELL_KINDS = frozenset({SceneEventKind.DWELL, SceneEventKind.EXIT})
_COUNT_KINDS = frozenset({SceneEventKind.SEEN, SceneEventKind.ENTER, SceneEventKind.DWELL})


def never_matches(rule: Rule) -> str | None:
    """Why ``rule`` can match no scene event at all, or None when it can match some.

    A disabled rule is not "never matching": it is switched off, and matches once enabled.
    """
    c = rule.conditions
    kind = c.event.value
    if not c.labels:
        return "the rule lists no labels, so no object can match it"
    if not rule.modes:
        return "the rule applies in no arming mode"
    if rule.schedule is not None:
        if not rule.schedule.days:
            return "the schedule has no days"
        if not rule.schedule.hours:
            return "the schedule has no hours"
    if c.zone is not None and c.event not in _ZONE_KINDS:
        return f"a zone condition needs an enter, exit or dwell event, but the rule is on {kind}"
    if c.line is not None and c.event is not SceneEventKind.CROSS:
        return f"a line condition needs a cross event, but the rule is on {kind}"
    if c.direction is not None and c.event is not SceneEventKind.CROSS:
        return f"a direction condition needs a cross event, but the rule is on {kind}"
    if c.min_dwell_s > 0 and c.event not in _DWELL_KINDS:
        return f"a dwell condition needs a dwell or exit event, but the rule is on {kind}"
    if c.min_count > 1 and c.event not in _COUNT_KINDS:
        return f"a count condition needs a seen, enter or dwell event, but the rule is on {kind}"
    return None


def unknown_zones(rule: Rule, zones: Collection[str], lines: Collection[str]) -> list[str]:
    """What ``rule`` names that a camera does not define: one sentence per unknown name."""
    problems = []
    zone, line = rule.conditions.zone, rule.conditions.line
    if zone is not None and zone not in zones:
        known = ", ".join(sorted(zones)) or "none"
        problems.append(f"zone {zone!r} is not defined (zones: {known})")
    if line is not None and line not in lines:
        known = ", ".join(sorted(lines)) or "none"
        problems.append(f"line {line!r} is not defined (lines: {known})")
    return problems


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The rule as JSON-ready data (what the store keeps)."""
    return rule.model_dump(mode="json")


def rule_from_dict(data: Mapping[str, Any]) -> Rule:
    """The rule stored as ``data``.

    Raises:
        pydantic.ValidationError: If ``data`` is not a valid rule.
    """
    return Rule.model_validate(dict(data))
