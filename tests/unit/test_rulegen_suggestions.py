"""RuleGen suggestions as stored and decided: drafts and dedupe keys, the status machine, what
accepting one makes (a rule, a tightened rule, an object mask) and stored rules as backtest
filters. No Ray, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel.config import ObjectMaskConfig
from sentinel.domain.rule_model import Conditions, HourRange, Rule, Schedule, Weekday
from sentinel.domain.scene import SceneEventKind
from sentinel.rules import backtest as bt
from sentinel.rules.job import frame_sizes, history_since
from sentinel.rules.mining import MaskSuggestion, RuleSuggestion, TighteningSuggestion
from sentinel.rules.rulegen import Suggestion
from sentinel.rules.schedule import next_run
from sentinel.rules.suggestions import (
    NotOpen,
    backtest_json,
    decide,
    dedupe_key,
    draft,
    proposed_rule,
    rule_filter,
    rule_for,
    tightened,
    upsert_action,
)

RESULT = bt.BacktestResult(
    matched=4,
    per_day=0.5,
    days=8.0,
    true_positives=1,
    false_positives=2,
    unjudged=1,
    precision=1 / 3,
    recall=None,
    cpu_share=0.0,
)
MASK = MaskSuggestion(
    camera_id="gate",
    label="car",
    polygon=((0.25, 0.5), (0.3125, 0.5), (0.3125, 0.5625), (0.25, 0.5625)),
    false_positives=10,
    true_positives_lost=0,
    detections_share=0.25,
)
NIGHT = RuleSuggestion(
    camera_id="gate",
    zone="",
    label="person",
    start_hour=20,
    end_hour=8,
    events_per_week=0.25,
    reason="person in the whole view: 50.0 events a week, but 0.25 a week between 20 and 08",
)
NOISY = TighteningSuggestion(
    rule_id="r1",
    alerts=20,
    false_positives=14,
    min_score=0.44,
    false_positives_removed=14,
    true_positives_lost=0,
)


def suggestion(found: object, result: bt.BacktestResult = RESULT) -> Suggestion:
    kind = {MaskSuggestion: "mask", RuleSuggestion: "rule", TighteningSuggestion: "tightening"}
    return Suggestion(kind[type(found)], found, bt.RuleFilter(), result)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "decision", "after", "error"),
    [
        ("suggested", "accepted", "accepted", None),
        ("suggested", "rejected", "rejected", None),
        ("accepted", "rejected", None, NotOpen),
        ("rejected", "accepted", None, NotOpen),
        ("accepted", "accepted", None, NotOpen),
        ("suggested", "suggested", None, ValueError),
        ("lost", "accepted", None, ValueError),
    ],
)
def test_status_machine(
    current: str, decision: str, after: str | None, error: type[Exception] | None
) -> None:
    if error is None:
        assert decide(current, decision) == after
    else:
        with pytest.raises(error):
            decide(current, decision)


@pytest.mark.parametrize(
    ("existing", "action"),
    [(None, "insert"), ("suggested", "update"), ("accepted", "keep"), ("rejected", "keep")],
)
def test_rerun_updates_open_suggestions_only(existing: str | None, action: str) -> None:
    assert upsert_action(existing) == action


def test_unknown_status_in_store_is_an_error() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        upsert_action("maybe")


def test_same_proposal_same_key_whatever_the_figures() -> None:
    better = bt.BacktestResult(9, 1.0, 9.0, 0, 9, 0, 0.0, None, 0.5)
    assert draft(suggestion(MASK)).dedupe_key == draft(suggestion(MASK, better)).dedupe_key
    moved = MaskSuggestion("gate", "car", ((0, 0), (0.1, 0), (0.1, 0.1), (0, 0.1)), 10, 0, 0.25)
    keys = {
        draft(suggestion(MASK)).dedupe_key,
        draft(suggestion(moved)).dedupe_key,
        draft(suggestion(NIGHT)).dedupe_key,
        draft(suggestion(NIGHT), timezone="Europe/Berlin").dedupe_key,
        draft(suggestion(NOISY)).dedupe_key,
    }
    assert len(keys) == 5
    assert all(len(k) == 64 for k in keys)
    with pytest.raises(ValueError, match="kind must be one of"):
        dedupe_key("wish", {})


def test_mask_draft() -> None:
    row = draft(suggestion(MASK))
    assert (row.kind, row.camera_id) == ("mask", "gate")
    assert row.proposal["object_mask"] == {
        "polygon": [[0.25, 0.5], [0.3125, 0.5], [0.3125, 0.5625], [0.25, 0.5625]],
        "labels": ["car"],
    }
    ObjectMaskConfig.model_validate(row.proposal["object_mask"])  # what a camera config takes
    assert row.proposal["false_positives"] == 10
    assert row.backtest == {
        "matched": 4,
        "per_day": 0.5,
        "days": 8.0,
        "true_positives": 1,
        "false_positives": 2,
        "unjudged": 1,
        "precision": 1 / 3,
        "recall": None,
        "cpu_share": 0.0,
    }
    assert row.reason == (
        "operators marked 10 car detections here as false alarms; masking it drops 25% of "
        "the camera's detections and loses 0 confirmed sightings"
    )


def test_rule_draft_becomes_a_rule_on_acceptance() -> None:
    row = draft(suggestion(NIGHT), timezone="Europe/Berlin")
    assert (row.kind, row.camera_id, row.reason) == ("rule", "gate", NIGHT.reason)
    assert "id" not in row.proposal["rule"] and "version" not in row.proposal["rule"]
    rule = proposed_rule(row.proposal, "new-id")
    assert (rule.id, rule.version) == ("new-id", 1)
    assert rule.name == "person on gate 20:00\u201308:00"
    assert rule.cameras == ("gate",)
    assert rule.conditions == Conditions(labels=("person",), event=SceneEventKind.SEEN)
    assert rule.schedule == Schedule(
        hours=(HourRange(start="20:00", end="08:00"),), timezone="Europe/Berlin"
    )
    assert proposed_rule(row.proposal).id != proposed_rule(row.proposal).id  # fresh ids


@pytest.mark.parametrize(
    ("zone", "start", "end", "event", "hours"),
    [
        ("door", 22, 6, SceneEventKind.ENTER, (HourRange(start="22:00", end="06:00"),)),
        ("", 20, 0, SceneEventKind.SEEN, (HourRange(start="20:00", end="24:00"),)),
        ("", 5, 5, SceneEventKind.SEEN, None),  # the whole day: no schedule
    ],
)
def test_rule_for(
    zone: str, start: int, end: int, event: SceneEventKind, hours: tuple[HourRange, ...] | None
) -> None:
    found = RuleSuggestion("gate", zone, "car", start, end, 0.1, "why")
    rule = rule_for(found, "UTC")
    assert rule.conditions.event is event
    assert rule.conditions.zone == (zone or None)
    assert (rule.schedule.hours if rule.schedule else None) == hours


def test_tightening_draft_and_tightened_rule() -> None:
    row = draft(suggestion(NOISY))
    assert (row.kind, row.camera_id) == ("tightening", None)
    assert row.proposal["rule_id"] == "r1" and row.proposal["min_score"] == 0.44
    assert row.reason == (
        "operators judged 14 of the rule's 20 alerts false; a minimum score of 0.44 removes "
        "14 of them and loses 0 true ones"
    )
    rule = Rule(id="r1", name="bikes", conditions=Conditions(min_score=0.2))
    assert tightened(rule, 0.44).conditions.min_score == 0.44
    assert tightened(rule, 0.1).conditions.min_score == 0.2  # never lowered
    assert tightened(rule, 0.44).conditions.labels == rule.conditions.labels


def test_backtest_json_has_no_nan() -> None:
    odd = bt.BacktestResult(0, float("nan"), 1.0, 0, 0, 0, None, None, 0.0)
    assert backtest_json(odd)["per_day"] is None


def test_stored_rule_as_backtest_filter() -> None:
    rule = Rule(
        id="r",
        name="Gate at night",
        cameras=("gate", "yard"),
        conditions=Conditions(
            labels=("person", "car"),
            event=SceneEventKind.DWELL,
            zone="door",
            min_dwell_s=30,
            min_score=0.5,
        ),
        schedule=Schedule(
            days=(Weekday.SUN,), hours=(HourRange(start="22:30", end="01:00"),), timezone="UTC"
        ),
    )
    flt, notes = rule_filter(rule)
    assert flt == bt.RuleFilter(
        camera_ids=frozenset({"gate", "yard"}),
        labels=frozenset({"person", "car"}),
        zones=frozenset({"door"}),
        min_score=0.5,
        # Sunday 22:00 and 23:00, then Monday 00:00 (the week wraps).
        hours_of_week=frozenset({6 * 24 + 22, 6 * 24 + 23, 0}),
        timezone="UTC",
        min_dwell_s=30,
    )
    assert any(n.startswith("zone 'door': objects that were in it") for n in notes)
    assert any("whole hours" in n for n in notes)
    assert any("not dwell events" in n for n in notes)

    always, notes = rule_filter(Rule(id="a", name="any", conditions=Conditions(event="seen")))
    assert always == bt.RuleFilter(labels=frozenset({"person"}))
    assert notes == ["the arming mode is not in the history: the site counts as armed throughout"]


T = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "now", "first_at", "expected"),
    [
        (None, T, None, T),  # a fresh start without a first delay runs at once
        (None, T, T + timedelta(minutes=15), T + timedelta(minutes=15)),
        (None, T + timedelta(hours=1), T + timedelta(minutes=15), T + timedelta(hours=1)),
        (T, T + timedelta(hours=1), None, T + timedelta(hours=6)),
        (T, T + timedelta(hours=1), T + timedelta(days=9), T + timedelta(hours=6)),
        (T, T + timedelta(hours=6), None, T + timedelta(hours=6)),
        (T, T + timedelta(days=3), None, T + timedelta(days=3)),  # missed runs: one, now
    ],
)
def test_next_run(
    last: datetime | None, now: datetime, first_at: datetime | None, expected: datetime
) -> None:
    assert next_run(last, now, 6 * 3600, first_at=first_at) == expected


@pytest.mark.parametrize(
    ("last", "now", "interval"),
    [(None, T, 0), (None, T.replace(tzinfo=None), 60), (T.replace(tzinfo=None), T, 60)],
)
def test_next_run_refuses(last: datetime | None, now: datetime, interval: float) -> None:
    with pytest.raises(ValueError):
        next_run(last, now, interval)


def test_frame_sizes_from_camera_statuses() -> None:
    statuses: dict[str, dict[str, object]] = {
        "gate": {"width": 1280, "height": 720, "state": "running"},
        "yard": {"width": None, "height": None},
        "door": {"state": "starting"},
        "bad": {"width": 0, "height": 720},
    }
    assert frame_sizes(statuses) == {"gate": (1280, 720)}


def test_history_window() -> None:
    assert history_since(T, None) is None
    assert history_since(T, 28) == T - timedelta(days=28)
    with pytest.raises(ValueError, match="days must be > 0"):
        history_since(T, 0)
