"""Backtests over a hand-built history whose every number is counted by hand below."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from sentinel.rules.backtest import (
    BacktestResult,
    MaskFilter,
    RuleFilter,
    backtest,
    backtest_partial,
    combine,
    finish,
    hours_of_week,
)
from sentinel.rules.mining import MaskSuggestion

PARIS = ZoneInfo("Europe/Paris")
MONDAY = datetime(2024, 5, 6, tzinfo=PARIS)  # local midnight; Paris is UTC+2 all month
TP, FP, NA = "true_positive", "false_positive", None

# (camera, label, score, day, "HH:MM" local, zone, verdict, dwell_s, bx, by)
ROWS = [
    # gate: rows 1-8 and 17 match the night rule below
    ("gate", "person", 0.90, 0, "23:00", "drive", TP, 5, 0.1, 0.1),  # 1
    ("gate", "person", 0.80, 1, "01:00", "drive", TP, 40, 0.1, 0.1),  # 2
    ("gate", "person", 0.70, 1, "05:30", "drive", FP, 60, 0.1, 0.1),  # 3
    ("gate", "person", 0.60, 2, "22:10", "drive", FP, 10, 0.1, 0.1),  # 4
    ("gate", "person", 0.95, 3, "03:00", "drive", NA, 31, 0.1, 0.1),  # 5
    ("gate", "person", 0.55, 4, "23:59", "drive", FP, 2, 0.1, 0.1),  # 6
    ("gate", "person", 0.85, 5, "00:30", "drive", TP, 30, 0.1, 0.1),  # 7
    ("gate", "person", 0.50, 6, "04:00", "drive", NA, 100, 0.1, 0.1),  # 8: score at the minimum
    ("gate", "person", 0.90, 0, "12:00", "drive", TP, 50, 0.1, 0.1),  # 9: daytime
    ("gate", "person", 0.90, 1, "06:00", "drive", FP, 50, 0.1, 0.1),  # 10: end is exclusive
    ("gate", "person", 0.90, 2, "21:59", "drive", NA, 50, 0.1, 0.1),  # 11: before start
    ("gate", "person", 0.49, 3, "23:00", "drive", FP, 50, 0.1, 0.1),  # 12: score too low
    ("gate", "car", 0.90, 4, "23:00", "drive", FP, 50, 0.1, 0.1),  # 13: label
    ("gate", "person", 0.90, 5, "02:00", "lawn", TP, 50, 0.1, 0.1),  # 14: zone
    ("gate", "person", 0.90, 6, "02:00", None, FP, 50, 0.1, 0.1),  # 15: no zone
    ("gate", "person", 0.70, 7, "13:00", "drive", TP, 50, 0.1, 0.1),  # 16: daytime
    ("gate", "person", 0.90, 8, "22:30", "drive", TP, 29, 0.1, 0.1),  # 17
    ("gate", "car", 0.60, 9, "10:00", None, NA, 50, 0.1, 0.1),  # 18
    ("gate", "person", 0.30, 9, "23:00", "drive", NA, 50, 0.1, 0.1),  # 19: score too low
    ("gate", "person", 0.90, 2, "14:00", "drive", TP, 50, 0.1, 0.1),  # 20: daytime
    # yard: rows 22-26 fall in the car mask [0.5, 1) x [0.5, 1)
    ("yard", "person", 0.90, 0, "00:00", "drive", TP, 50, 0.2, 0.3),  # 21: first event
    ("yard", "car", 0.80, 10, "00:00", None, NA, 50, 0.7, 0.9),  # 22: last event
    ("yard", "car", 0.60, 1, "12:00", None, FP, 50, 0.6, 0.6),  # 23
    ("yard", "car", 0.70, 2, "12:00", None, FP, 50, 0.9, 0.99),  # 24
    ("yard", "car", 0.70, 3, "12:00", None, FP, 50, 1.0, 1.0),  # 25: on the border
    ("yard", "car", 0.90, 4, "12:00", None, TP, 50, 0.55, 0.75),  # 26
    ("yard", "person", 0.90, 5, "12:00", None, FP, 50, 0.6, 0.6),  # 27: label
    ("yard", "car", 0.70, 6, "12:00", None, FP, 50, 0.4, 0.6),  # 28: left of it
    ("yard", "car", 0.70, 7, "12:00", None, TP, 50, 0.6, 0.4),  # 29: above it
    ("yard", "car", 0.70, 8, "12:00", None, FP, 50, np.nan, np.nan),  # 30: size unknown
]

NIGHT = RuleFilter(
    camera_ids=frozenset({"gate"}),
    labels=frozenset({"person"}),
    zones=frozenset({"drive"}),
    min_score=0.5,
    hours_of_week=hours_of_week(22, 6),
    timezone="Europe/Paris",
)
NIGHT_STAY = RuleFilter(
    camera_ids=NIGHT.camera_ids,
    labels=NIGHT.labels,
    zones=NIGHT.zones,
    min_score=NIGHT.min_score,
    hours_of_week=NIGHT.hours_of_week,
    timezone=NIGHT.timezone,
    min_dwell_s=30,
)
CAR_MASK = MaskFilter("yard", frozenset({"car"}), 0.5, 0.5, 1.0, 1.0)
EVERYTHING = RuleFilter()
FILTERS = (NIGHT, NIGHT_STAY, CAR_MASK, EVERYTHING)


def history() -> pd.DataFrame:
    records = []
    for camera, label, score, day, hhmm, zone, verdict, dwell, bx, by in ROWS:
        hour, minute = (int(v) for v in hhmm.split(":"))
        local = MONDAY + timedelta(days=day, hours=hour, minutes=minute)
        records.append(
            {
                "camera_id": camera,
                "label": label,
                "score": score,
                "started_at": local.astimezone(ZoneInfo("UTC")),
                "box": "[0, 0, 1, 1]",
                "zone": zone,
                "verdict": verdict,
                "dwell_s": float(dwell),
                "bx": bx,
                "by": by,
            }
        )
    return pd.DataFrame(records)


def test_night_rule_counted_by_hand() -> None:
    night, stay, _, _ = backtest(history(), FILTERS)
    # Rows 1-8 and 17; span: day 0 00:00 to day 10 00:00.
    assert night == BacktestResult(
        matched=9,
        per_day=0.9,
        days=10.0,
        true_positives=4,  # 1, 2, 7, 17
        false_positives=3,  # 3, 4, 6
        unjudged=2,  # 5, 8
        precision=4 / 7,
        recall=4 / 8,  # gate's true positives: 1, 2, 7, 9, 14, 16, 17, 20
        cpu_share=0.0,
    )
    assert night.alerts == 9
    # Staying 30 s or more: rows 2, 3, 5, 7, 8.
    assert (stay.matched, stay.true_positives, stay.false_positives, stay.unjudged) == (5, 2, 1, 2)
    assert stay.precision == pytest.approx(2 / 3)
    assert stay.recall == 0.25
    assert stay.per_day == 0.5


def test_every_zone_an_object_was_in_counts() -> None:
    plain = history()
    zones: list[tuple[str, ...] | None] = [(z,) if z else () for z in plain["zone"]]
    listed = plain.assign(zones=pd.Series(zones, dtype=object))
    assert backtest(listed, FILTERS) == backtest(plain, FILTERS)
    # Row 14 walked over the lawn into the drive, row 15 had no zone recorded: 14 now counts.
    zones[13], zones[14] = ("lawn", "drive"), None
    listed = plain.assign(zones=pd.Series(zones, dtype=object))
    night = backtest(listed, FILTERS)[0]
    assert (night.matched, night.true_positives, night.false_positives) == (10, 5, 3)


def test_car_mask_counted_by_hand() -> None:
    mask = backtest(history(), FILTERS)[2]
    # Rows 22-26 (25 on the border counts); 27 is a person, 28-29 outside, 30 unknown.
    assert mask.detections_removed == 5
    assert mask.false_positives_removed == 3  # 23, 24, 25
    assert mask.true_positives_lost == 1  # 26
    assert mask.unjudged == 1  # 22
    assert mask.cpu_share == 0.5  # 5 of yard's 10 detections
    assert mask.recall == pytest.approx(1 / 3)  # yard's true positives: 21, 26, 29
    assert mask.per_day == 0.5


def test_everything_and_given_span() -> None:
    result = backtest(history(), FILTERS, days=30.0)[3]
    assert (result.matched, result.true_positives, result.false_positives) == (30, 11, 13)
    assert result.unjudged == 6
    assert result.per_day == 1.0
    assert result.recall == 1.0


def test_three_batches_combine_to_the_same_results() -> None:
    frame = history()
    whole = backtest(frame, FILTERS)
    shuffled = frame.sample(frac=1.0, random_state=7)
    parts = [backtest_partial(shuffled.iloc[i : i + 10], FILTERS) for i in (0, 10, 20)]
    assert finish(combine(parts), FILTERS) == whole
    # Any grouping: combine of combines, with an empty batch in between.
    empty = backtest_partial(frame.iloc[0:0], FILTERS)
    nested = combine([combine(parts[:2]), empty, parts[2]])
    assert finish(nested, FILTERS) == whole


def test_empty_history() -> None:
    frame = history().iloc[0:0]
    result = backtest(frame, FILTERS)[0]
    assert result == BacktestResult(0, 0.0, 1.0, 0, 0, 0, None, None, 0.0)


def test_mask_from_suggestion() -> None:
    suggestion = MaskSuggestion(
        "yard", "car", ((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)), 3, 1, 0.5
    )
    assert MaskFilter.from_suggestion(suggestion) == CAR_MASK


def test_hours_of_week() -> None:
    assert hours_of_week(22, 2, days=[6]) == {166, 167, 0, 1}  # Sunday night wraps to Monday
    assert hours_of_week(8, 8, days=[0]) == set(range(8, 32))  # a whole day from 08:00
    assert len(hours_of_week(22, 6)) == 7 * 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_score": 1.5}, "min_score"),
        ({"hours_of_week": frozenset({168})}, "hours_of_week"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"min_dwell_s": -1.0}, "min_dwell_s"),
    ],
)
def test_rule_filter_refuses(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuleFilter(**kwargs)  # type: ignore[arg-type]


def test_mask_filter_refuses_an_empty_rectangle() -> None:
    with pytest.raises(ValueError, match="x0 < x1"):
        MaskFilter("yard", frozenset(), 0.5, 0.0, 0.5, 1.0)


def test_missing_columns_are_named() -> None:
    frame = history().drop(columns=["dwell_s", "bx"])
    with pytest.raises(ValueError, match="'dwell_s'"):
        backtest(frame, [NIGHT_STAY])
    with pytest.raises(ValueError, match="'bx'"):
        backtest(frame, [CAR_MASK])
    with pytest.raises(ValueError, match="'rule_id'"):
        backtest(frame, [RuleFilter(rule_id="r1")])
