"""The rule engine: which rules the scene events of an analysed frame match, and why.

``RuleSet(rules, mode)`` compiles rules once (label sets, schedule minutes, per-camera and
per-kind indexes), so ``evaluate`` costs a few dictionary look-ups per event and rule; a frame
with no matching rule builds no explanation at all. It holds the only state of matching: the
cooldown per (rule, camera, track), so one loitering person makes one alert per cooldown, not
one per frame. ``RuleSet.updated`` carries that state over to new rules or a new arming mode.

``diagnose(rule, event, mode)`` checks one rule against one event condition by condition, for
dry runs ("why did this not alert?"); a match's reasons come from the same checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sentinel.domain.alerts import Severity
from sentinel.domain.rule_model import ArmingMode, HourRange, Rule, Schedule, never_matches
from sentinel.domain.scene import CrossDirection, SceneEvent, SceneEventKind

__all__ = ["Diagnosis", "Reason", "RuleMatch", "RuleSet", "describe_event", "diagnose"]

_DAY_MIN = 24 * 60


@dataclass(frozen=True, slots=True)
class Reason:
    """One condition of a rule checked against one event.

    Attributes:
        condition: Which condition: "enabled", "camera", "mode", "event", "label", "zone",
            "line", "direction", "dwell", "count", "score", "schedule" or "cooldown".
        ok: Whether the event satisfies it.
        detail: What was required and what the event had, in words.
    """

    condition: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Every condition of one rule checked against one event (``matched``: all hold)."""

    matched: bool
    reasons: tuple[Reason, ...]
    local_time: datetime

    @property
    def failed(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if not r.ok)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched a scene event: what the alert says and why.

    Attributes:
        rule_id: The rule.
        rule_name: Its name.
        rule_version: The version that matched.
        severity: The rule's severity.
        event: The scene event it matched.
        mode: The arming mode at the time.
        local_time: The event's time in the rule's schedule timezone.
        schedule: The schedule in words (``"always"`` without one).
        reasons: Each condition and how the event met it.
    """

    rule_id: str
    rule_name: str
    rule_version: int
    severity: Severity
    event: SceneEvent
    mode: ArmingMode
    local_time: datetime
    schedule: str
    reasons: tuple[Reason, ...]

    def explanation(self) -> str:
        """One readable sentence, e.g. "Rule 'Gate after dark' (v3): person entered zone
        'gate' at 22:14 (score 0.81), schedule 22:00-06:00 Europe/Berlin, mode night" (with an
        en dash in the range)."""
        return (
            f"Rule {self.rule_name!r} (v{self.rule_version}): {describe_event(self.event)} "
            f"at {self.local_time:%H:%M} (score {self.event.score:.2f}), "
            f"schedule {self.schedule}, mode {self.mode.value}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the rule, the explanation and the reasons."""
        return {
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "rule_version": self.rule_version,
            "severity": self.severity.value,
            "explanation": self.explanation(),
            "reasons": [r.to_dict() for r in self.reasons],
        }


def describe_event(event: SceneEvent) -> str:
    """What the object did, in words: "person entered zone 'gate'"."""
    label, kind = event.label, event.kind
    if kind is SceneEventKind.ENTER:
        return f"{label} entered zone {event.zone!r}"
    if kind is SceneEventKind.EXIT:
        return f"{label} left zone {event.zone!r} after {event.dwell_s:.0f} s"
    if kind is SceneEventKind.DWELL:
        return f"{label} stayed in zone {event.zone!r} for {event.dwell_s:.0f} s"
    if kind is SceneEventKind.CROSS:
        side = f" ({event.direction.value})" if event.direction is not None else ""
        return f"{label} crossed line {event.line!r}{side}"
    return f"{label} seen" + (f" ({event.count} in view)" if event.count > 1 else "")


def _schedule_text(schedule: Schedule | None) -> str:
    return "always" if schedule is None else schedule.describe()


def _in_range(minute: int, weekday: int, days: frozenset[int], r: tuple[int, int]) -> bool:
    start, end = r
    if start < end:
        return start <= minute < end and weekday in days
    # Wraps midnight: the evening part belongs to today, the morning part to yesterday.
    if minute >= start:
        return weekday in days
    return minute < end and (weekday - 1) % 7 in days


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule in the shape matching wants: sets and minutes, looked up once."""

    rule: Rule
    labels: frozenset[str]
    kind: SceneEventKind
    zone: str | None
    line: str | None
    direction: CrossDirection | None
    min_dwell_s: float
    min_count: int
    min_score: float
    tz: ZoneInfo | None
    days: frozenset[int]
    ranges: tuple[tuple[int, int], ...]
    cooldown: timedelta

    @classmethod
    def of(cls, rule: Rule) -> _Compiled:
        c, s = rule.conditions, rule.schedule
        return cls(
            rule=rule,
            labels=frozenset(c.labels),
            kind=c.event,
            zone=c.zone,
            line=c.line,
            direction=c.direction,
            min_dwell_s=c.min_dwell_s,
            min_count=c.min_count,
            min_score=c.min_score,
            tz=None if s is None else ZoneInfo(s.timezone),
            days=frozenset() if s is None else frozenset(d.number for d in s.days),
            ranges=() if s is None else tuple((h.start_min, h.end_min) for h in s.hours),
            cooldown=timedelta(seconds=rule.cooldown_s),
        )

    def conditions_hold(self, ev: SceneEvent) -> bool:
        return (
            ev.label in self.labels
            and ev.score >= self.min_score
            and (self.zone is None or ev.zone == self.zone)
            and (self.line is None or ev.line == self.line)
            and (self.direction is None or ev.direction == self.direction)
            and ev.dwell_s >= self.min_dwell_s
            and ev.count >= self.min_count
        )

    def in_schedule(self, local: datetime) -> bool:
        if self.tz is None:
            return True
        minute, weekday = local.hour * 60 + local.minute, local.weekday()
        return any(_in_range(minute, weekday, self.days, r) for r in self.ranges)


def _local(at: datetime, tz: ZoneInfo | None) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"scene event time must be timezone-aware, but got {at.isoformat()}")
    return at if tz is None else at.astimezone(tz)


def _matching_range(rule: Rule, local: datetime) -> HourRange | None:
    s = rule.schedule
    if s is None:
        return None
    days = frozenset(d.number for d in s.days)
    minute, weekday = local.hour * 60 + local.minute, local.weekday()
    for h in s.hours:
        if _in_range(minute, weekday, days, (h.start_min, h.end_min)):
            return h
    return None


def diagnose(rule: Rule, event: SceneEvent, mode: ArmingMode | None = None) -> Diagnosis:
    """Every condition of ``rule`` checked against ``event`` (the cooldown is left out: a dry
    run has no history).

    Args:
        rule: The rule.
        event: A scene event (timezone-aware ``at``).
        mode: The arming mode; None leaves the mode check out.

    Raises:
        ValueError: If ``event.at`` is naive.
    """
    c, s = rule.conditions, rule.schedule
    local = _local(event.at, None if s is None else ZoneInfo(s.timezone))
    reasons: list[Reason] = []

    def check(condition: str, ok: bool, detail: str) -> None:
        reasons.append(Reason(condition, ok, detail))

    pointless = never_matches(rule)
    if pointless is not None:
        check("rule", False, pointless)
    check("enabled", rule.enabled, "the rule is enabled" if rule.enabled else "rule is disabled")
    cams = ", ".join(rule.cameras) or "every camera"
    check(
        "camera",
        rule.applies_to(event.camera_id),
        f"camera {event.camera_id!r}; the rule covers {cams}",
    )
    if mode is not None:
        modes = ", ".join(m.value for m in rule.modes) or "no mode"
        check("mode", mode in rule.modes, f"mode {mode.value}; the rule applies in {modes}")
    check(
        "event",
        event.kind is c.event,
        f"event {event.kind.value}; the rule wants {c.event.value}",
    )
    labels = ", ".join(c.labels) or "no label"
    check("label", event.label in c.labels, f"label {event.label!r}; the rule wants {labels}")
    if c.zone is not None:
        check("zone", event.zone == c.zone, f"zone {event.zone!r}; the rule wants {c.zone!r}")
    if c.line is not None:
        check("line", event.line == c.line, f"line {event.line!r}; the rule wants {c.line!r}")
    if c.direction is not None:
        got = event.direction.value if event.direction is not None else None
        check(
            "direction",
            event.direction == c.direction,
            f"direction {got!r}; the rule wants {c.direction.value!r}",
        )
    if c.min_dwell_s > 0:
        check(
            "dwell",
            event.dwell_s >= c.min_dwell_s,
            f"in the zone {event.dwell_s:.0f} s; the rule wants at least {c.min_dwell_s:g} s",
        )
    if c.min_count > 1:
        check(
            "count",
            event.count >= c.min_count,
            f"{event.count} at once; the rule wants at least {c.min_count}",
        )
    if c.min_score > 0:
        check(
            "score",
            event.score >= c.min_score,
            f"score {event.score:.2f}; the rule wants at least {c.min_score:.2f}",
        )
    when = f"{local:%a %H:%M} local"
    if s is None:
        check("schedule", True, f"{when}; the rule has no schedule (always)")
    else:
        hit = _matching_range(rule, local)
        inside = f"within {hit}" if hit is not None else "outside"
        check("schedule", hit is not None, f"{when}, {inside} the schedule {s.describe()}")
    return Diagnosis(all(r.ok for r in reasons), tuple(reasons), local)


@dataclass
class RuleSet:
    """Rules in force and the arming mode: matches scene events, remembering cooldowns.

    Args:
        rules: The rules (disabled and never-matching ones are kept but never match).
        mode: The site's arming mode.
    """

    rules: Sequence[Rule]
    mode: ArmingMode
    _by_kind: dict[SceneEventKind, list[_Compiled]] = field(init=False, repr=False)
    _last: dict[tuple[str, str, int], datetime] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rules = tuple(self.rules)
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"rule ids must be distinct, but got {sorted(ids)}")
        self._by_kind = {}
        for rule in self.rules:
            if rule.enabled and self.mode in rule.modes and never_matches(rule) is None:
                compiled = _Compiled.of(rule)
                self._by_kind.setdefault(compiled.kind, []).append(compiled)
        self._last = {}

    def updated(self, rules: Sequence[Rule], mode: ArmingMode) -> RuleSet:
        """A rule set over new ``rules`` and ``mode`` that keeps the cooldowns of the rules it
        still holds (an edit or an arming change does not re-alert on every object in view)."""
        fresh = RuleSet(rules, mode)
        kept = {r.id for r in fresh.rules}
        fresh._last = {k: v for k, v in self._last.items() if k[0] in kept}
        return fresh

    def evaluate(self, events: Iterable[SceneEvent]) -> list[RuleMatch]:
        """The matches of one frame's scene events, in event order then rule order.

        A rule matches an event when it is enabled, applies in the arming mode and to the
        event's camera, every condition holds, the event's local time is inside the schedule,
        and the rule has not matched the same track within its cooldown.

        Raises:
            ValueError: If an event's ``at`` is naive.
        """
        matches: list[RuleMatch] = []
        by_kind = self._by_kind
        locals_: dict[tuple[datetime, ZoneInfo | None], datetime] = {}
        for ev in events:
            candidates = by_kind.get(ev.kind)
            if not candidates:
                continue
            for cr in candidates:
                rule = cr.rule
                if rule.cameras and ev.camera_id not in rule.cameras:
                    continue
                if not cr.conditions_hold(ev):
                    continue
                key_t = (ev.at, cr.tz)
                local = locals_.get(key_t)
                if local is None:
                    local = locals_[key_t] = _local(ev.at, cr.tz)
                if not cr.in_schedule(local):
                    continue
                key = (rule.id, ev.camera_id, ev.track_id)
                last = self._last.get(key)
                if last is not None and ev.at - last < cr.cooldown:
                    continue
                self._last[key] = ev.at
                matches.append(self._match(rule, ev))
        return matches

    def _match(self, rule: Rule, ev: SceneEvent) -> RuleMatch:
        d = diagnose(rule, ev, self.mode)
        cooldown = Reason(
            "cooldown", True, f"no match on track {ev.track_id} in the last {rule.cooldown_s:g} s"
        )
        return RuleMatch(
            rule_id=rule.id,
            rule_name=rule.name,
            rule_version=rule.version,
            severity=rule.severity,
            event=ev,
            mode=self.mode,
            local_time=d.local_time,
            schedule=_schedule_text_of(rule, d.local_time),
            reasons=(*d.reasons, cooldown),
        )

    def forget_before(self, at: datetime) -> int:
        """Drops cooldowns that ended before ``at`` (bounded memory on a busy camera);
        returns how many were dropped."""
        longest = {r.id: timedelta(seconds=r.cooldown_s) for r in self.rules}
        stale = [k for k, t in self._last.items() if t + longest.get(k[0], timedelta(0)) < at]
        for k in stale:
            del self._last[k]
        return len(stale)


def _schedule_text_of(rule: Rule, local: datetime) -> str:
    """The schedule as the explanation shows it: the matching range, else the whole."""
    s = rule.schedule
    if s is None:
        return "always"
    hit = _matching_range(rule, local)
    if hit is None or len(s.hours) == 1:
        return _schedule_text(s)
    return f"{hit} {s.timezone}"
