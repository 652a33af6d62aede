"""The rule model and engine: each condition, schedules across midnight and DST, arming modes,
cooldown per rule x track, explanations, dry-run diagnoses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from sentinel.domain.alerts import Severity
from sentinel.domain.rule_model import (
    ArmingMode,
    Conditions,
    HourRange,
    Rule,
    Schedule,
    Weekday,
    never_matches,
    rule_from_dict,
    rule_to_dict,
    unknown_zones,
)
from sentinel.domain.rules import RuleSet, diagnose
from sentinel.domain.scene import CrossDirection, SceneEvent, SceneEventKind

BERLIN = "Europe/Berlin"
# Wednesday 2026-01-14, 23:00 in Berlin (CET, UTC+1).
NIGHT = datetime(2026, 1, 14, 22, 0, tzinfo=UTC)


def ev(
    kind: SceneEventKind = SceneEventKind.ENTER,
    *,
    at: datetime = NIGHT,
    track: int = 1,
    camera: str = "cam",
    **kw: Any,
) -> SceneEvent:
    values: dict[str, Any] = {"label": "person", "score": 0.8, "zone": "gate"}
    if kind is SceneEventKind.CROSS:
        values.update(zone=None, line="door", direction=CrossDirection.IN)
    if kind is SceneEventKind.SEEN:
        values.update(zone=None)
    values.update(kw)
    return SceneEvent(kind, camera, track, f"ev-{track}", at=at, **values)


def rule(**kw: Any) -> Rule:
    conditions = kw.pop("conditions", {})
    base: dict[str, Any] = {"id": "r1", "name": "Gate", "cooldown_s": 0}
    base.update(kw)
    return Rule(conditions=Conditions(**conditions), **base)


def night_schedule(**kw: Any) -> Schedule:
    return Schedule(hours=(HourRange(start="22:00", end="06:00"),), timezone=BERLIN, **kw)


def matches(r: Rule, event: SceneEvent, mode: ArmingMode = ArmingMode.AWAY) -> bool:
    return bool(RuleSet([r], mode).evaluate([event]))


@pytest.mark.parametrize(
    ("conditions", "event", "ok"),
    [
        ({}, ev(), True),
        ({"labels": ("car",)}, ev(), False),
        ({"labels": ("car", "person")}, ev(), True),
        ({"event": "exit"}, ev(), False),
        ({"zone": "gate"}, ev(), True),
        ({"zone": "yard"}, ev(), False),
        ({"event": "cross", "line": "door"}, ev(SceneEventKind.CROSS), True),
        ({"event": "cross", "line": "fence"}, ev(SceneEventKind.CROSS), False),
        ({"event": "cross", "direction": "in"}, ev(SceneEventKind.CROSS), True),
        ({"event": "cross", "direction": "out"}, ev(SceneEventKind.CROSS), False),
        ({"event": "dwell", "min_dwell_s": 30}, ev(SceneEventKind.DWELL, dwell_s=31), True),
        ({"event": "dwell", "min_dwell_s": 30}, ev(SceneEventKind.DWELL, dwell_s=29), False),
        ({"min_count": 3}, ev(count=3), True),
        ({"min_count": 3}, ev(count=2), False),
        ({"min_score": 0.8}, ev(score=0.8), True),
        ({"min_score": 0.81}, ev(score=0.8), False),
        ({"event": "seen"}, ev(SceneEventKind.SEEN), True),
    ],
)
def test_each_condition(conditions: dict[str, Any], event: SceneEvent, ok: bool) -> None:
    r = rule(conditions=conditions)
    assert matches(r, event) is ok
    d = diagnose(r, event, ArmingMode.AWAY)
    assert d.matched is ok
    assert (d.failed == ()) is ok


@pytest.mark.parametrize(
    ("local", "ok"),
    [
        ("2026-01-14T21:59", False),  # Wednesday, before the range
        ("2026-01-14T22:00", True),
        ("2026-01-14T23:59", True),
        ("2026-01-15T00:00", True),  # past midnight: Wednesday's range still runs
        ("2026-01-15T05:59", True),
        ("2026-01-15T06:00", False),  # end is exclusive
        ("2026-01-15T12:00", False),
    ],
)
def test_schedule_wraps_past_midnight(local: str, ok: bool) -> None:
    at = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(BERLIN))
    assert matches(rule(schedule=night_schedule()), ev(at=at)) is ok


@pytest.mark.parametrize(
    ("local", "ok"),
    [
        ("2026-01-16T23:00", True),  # Friday evening
        ("2026-01-17T03:00", True),  # Saturday morning: Friday's range
        ("2026-01-17T23:00", False),  # Saturday evening: not a listed day
        ("2026-01-16T03:00", False),  # Friday morning: Thursday's range, Thursday not listed
    ],
)
def test_wrapping_hours_belong_to_the_day_they_start(local: str, ok: bool) -> None:
    at = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(BERLIN))
    r = rule(schedule=night_schedule(days=(Weekday.FRI,)))
    assert matches(r, ev(at=at)) is ok


@pytest.mark.parametrize(
    ("utc", "ok", "local"),
    [
        # 29 March 2026: clocks go 02:00 CET -> 03:00 CEST.
        ("2026-03-29T00:30", True, "01:30"),
        ("2026-03-29T01:30", True, "03:30"),
        ("2026-03-29T03:59", True, "05:59"),
        ("2026-03-29T04:30", False, "06:30"),  # a fixed +01:00 would say 05:30 (inside)
        ("2026-03-28T20:30", False, "21:30"),
        ("2026-03-29T20:00", True, "22:00"),  # a fixed +01:00 would say 21:00 (outside)
        # 25 October 2026: clocks go 03:00 CEST -> 02:00 CET; 02:30 happens twice.
        ("2026-10-25T00:30", True, "02:30"),
        ("2026-10-25T01:30", True, "02:30"),
        ("2026-10-25T04:30", True, "05:30"),  # a fixed +02:00 would say 06:30 (outside)
        ("2026-10-25T05:00", False, "06:00"),
        ("2026-10-24T19:30", False, "21:30"),
        ("2026-10-24T20:00", True, "22:00"),
    ],
)
def test_schedule_follows_daylight_saving(utc: str, ok: bool, local: str) -> None:
    at = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    r = rule(schedule=night_schedule())
    assert matches(r, ev(at=at)) is ok
    d = diagnose(r, ev(at=at))
    assert f"{d.local_time:%H:%M}" == local
    assert d.matched is ok


@pytest.mark.parametrize(
    ("modes", "mode", "ok"),
    [
        ((), ArmingMode.AWAY, False),
        (("away", "night"), ArmingMode.AWAY, True),
        (("away", "night"), ArmingMode.HOME, False),
        (("disarmed",), ArmingMode.DISARMED, True),
        (("home", "away", "night"), ArmingMode.DISARMED, False),
    ],
)
def test_arming_modes(modes: tuple[str, ...], mode: ArmingMode, ok: bool) -> None:
    assert matches(rule(modes=modes), ev(), mode) is ok


def test_default_rule_is_silent_when_disarmed() -> None:
    r = Rule(name="x")
    assert not matches(r, ev(), ArmingMode.DISARMED)
    assert matches(r, ev(), ArmingMode.NIGHT)


def test_disabled_rules_and_other_cameras_never_match() -> None:
    assert not matches(rule(enabled=False), ev())
    assert matches(rule(cameras=("cam", "other")), ev())
    assert not matches(rule(cameras=("other",)), ev())
    assert not diagnose(rule(cameras=("other",)), ev()).matched


def test_cooldown_is_per_rule_and_track() -> None:
    a, b = rule(id="a", cooldown_s=30), rule(id="b", cooldown_s=0)
    rs = RuleSet([a, b], ArmingMode.AWAY)

    def fired(t: float, track: int) -> list[str]:
        at = NIGHT + timedelta(seconds=t)
        return [m.rule_id for m in rs.evaluate([ev(at=at, track=track)])]

    assert fired(0, 1) == ["a", "b"]
    assert fired(1, 1) == ["b"]  # a cools down for track 1 only
    assert fired(1, 2) == ["a", "b"]
    assert fired(29.9, 1) == ["b"]
    assert fired(30, 1) == ["a", "b"]
    # The same track id on another camera is another object.
    assert [m.rule_id for m in rs.evaluate([ev(at=NIGHT, camera="cam2")])] == ["a", "b"]
    # An edit keeps the cooldowns of the rules that remain.
    rs2 = rs.updated([a], ArmingMode.NIGHT)
    assert rs2.evaluate([ev(at=NIGHT + timedelta(seconds=31))]) == []
    assert rs2.forget_before(NIGHT + timedelta(hours=1)) == 3
    assert len(rs2.evaluate([ev(at=NIGHT + timedelta(seconds=31))])) == 1


def test_explanation_and_reasons() -> None:
    r = rule(
        name="Gate after dark",
        version=3,
        severity="critical",
        schedule=night_schedule(),
        conditions={"zone": "gate", "min_score": 0.5},
    )
    at = datetime(2026, 1, 14, 22, 14, tzinfo=ZoneInfo(BERLIN))
    [m] = RuleSet([r], ArmingMode.NIGHT).evaluate([ev(at=at, score=0.81)])
    assert m.explanation() == (
        "Rule 'Gate after dark' (v3): person entered zone 'gate' at 22:14 (score 0.81), "
        "schedule 22:00\u201306:00 Europe/Berlin, mode night"
    )
    assert m.severity is Severity.CRITICAL
    assert [x.condition for x in m.reasons] == [
        "enabled",
        "camera",
        "mode",
        "event",
        "label",
        "zone",
        "score",
        "schedule",
        "cooldown",
    ]
    assert all(x.ok for x in m.reasons)
    assert m.to_dict()["reasons"][0] == {
        "condition": "enabled",
        "ok": True,
        "detail": "the rule is enabled",
    }


@pytest.mark.parametrize(
    ("event", "phrase"),
    [
        (ev(SceneEventKind.EXIT, dwell_s=12), "person left zone 'gate' after 12 s"),
        (ev(SceneEventKind.DWELL, dwell_s=45), "person stayed in zone 'gate' for 45 s"),
        (ev(SceneEventKind.CROSS), "person crossed line 'door' (in)"),
        (ev(SceneEventKind.SEEN, count=3), "person seen (3 in view)"),
    ],
)
def test_explanations_per_kind(event: SceneEvent, phrase: str) -> None:
    [m] = RuleSet([rule(conditions={"event": event.kind.value})], ArmingMode.AWAY).evaluate([event])
    assert phrase in m.explanation()
    assert "schedule always" in m.explanation()


def test_diagnose_says_what_failed() -> None:
    r = rule(schedule=night_schedule(), conditions={"labels": ("car",), "min_score": 0.9})
    d = diagnose(r, ev(at=NIGHT - timedelta(hours=3), score=0.5), ArmingMode.DISARMED)
    assert not d.matched
    assert {x.condition for x in d.failed} == {"mode", "label", "score", "schedule"}
    detail = {x.condition: x.detail for x in d.failed}
    assert detail["score"] == "score 0.50; the rule wants at least 0.90"
    assert "outside the schedule 22:00\u201306:00 Europe/Berlin" in detail["schedule"]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({}, None),
        ({"conditions": {"labels": ()}}, "lists no labels"),
        ({"modes": ()}, "no arming mode"),
        ({"schedule": Schedule(days=())}, "no days"),
        ({"schedule": Schedule(hours=())}, "no hours"),
        ({"conditions": {"event": "seen", "zone": "gate"}}, "zone condition needs"),
        ({"conditions": {"event": "enter", "line": "door"}}, "line condition needs"),
        ({"conditions": {"event": "dwell", "direction": "in"}}, "direction condition needs"),
        ({"conditions": {"event": "enter", "min_dwell_s": 5}}, "dwell condition needs"),
        ({"conditions": {"event": "exit", "min_dwell_s": 5}}, None),
        ({"conditions": {"event": "cross", "min_count": 2}}, "count condition needs"),
    ],
)
def test_never_matches(kw: dict[str, Any], reason: str | None) -> None:
    r = rule(**kw)
    found = never_matches(r)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found
        assert RuleSet([r], ArmingMode.AWAY).evaluate([ev()]) == []
        assert not diagnose(r, ev()).matched


def test_unknown_zones() -> None:
    r = rule(conditions={"zone": "gate"})
    assert unknown_zones(r, ["gate"], []) == []
    assert unknown_zones(r, ["yard", "drive"], []) == [
        "zone 'gate' is not defined (zones: drive, yard)"
    ]
    c = rule(conditions={"event": "cross", "line": "door"})
    assert unknown_zones(c, [], []) == ["line 'door' is not defined (lines: none)"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": ""}, "at least 1 character"),
        ({"name": "x", "severity": "warning"}, "severity"),
        ({"name": "x", "colour": "red"}, "Extra inputs"),
        ({"name": "x", "schedule": {"timezone": "Mars/Olympus"}}, "IANA name"),
        ({"name": "x", "schedule": {"hours": [{"start": "25:00", "end": "06:00"}]}}, "pattern"),
        ({"name": "x", "schedule": {"hours": [{"start": "06:00", "end": "06:00"}]}}, "empty"),
        ({"name": "x", "conditions": {"min_score": 1.5}}, "less than or equal"),
        ({"name": "x", "cooldown_s": -1}, "greater than or equal"),
        ({"name": "x", "actions": []}, "at least 1 item"),
        ({"name": "x", "actions": ["sms"]}, "alert"),
    ],
)
def test_bad_rules_are_refused(data: dict[str, Any], error: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=error):
        rule_from_dict(data)


def test_round_trip() -> None:
    r = rule(
        cameras=("b", "a"),
        schedule=night_schedule(days=(Weekday.SUN, Weekday.MON)),
        conditions={"event": "cross", "line": "door", "direction": "out"},
    )
    data = rule_to_dict(r)
    assert data["cameras"] == ["a", "b"]
    assert data["schedule"]["days"] == ["mon", "sun"]
    assert rule_from_dict(data) == r
    assert HourRange(start="00:00", end="24:00").end_min == 24 * 60


def test_naive_times_and_duplicate_ids_are_refused() -> None:
    naive = replace(ev(), at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        RuleSet([rule(schedule=night_schedule())], ArmingMode.AWAY).evaluate([naive])
    with pytest.raises(ValueError, match="distinct"):
        RuleSet([rule(), rule()], ArmingMode.AWAY)
