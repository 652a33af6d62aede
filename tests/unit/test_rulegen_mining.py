"""RuleGen's mining on a seeded history: exact counts, masks, quiet hours, noisy rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from sentinel.rules.mining import (
    activity_counts,
    activity_profile,
    combine_counts,
    mask_suggestions,
    prepare,
    rule_suggestions,
    tightening_suggestions,
    verdict_cells,
)

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
SIZE = {"gate": (800, 600)}


def _row(
    day: int,
    hour: int,
    *,
    label: str = "person",
    x: float = 400,
    y: float = 300,
    zone: str = "",
    verdict: str | None = None,
    camera: str = "gate",
    score: float = 0.8,
) -> dict[str, object]:
    return {
        "camera_id": camera,
        "label": label,
        "score": score,
        "started_at": MONDAY + timedelta(days=day, hours=hour, minutes=10),
        "box": [x - 20, y - 80, x + 20, y],
        "zone": zone,
        "verdict": verdict,
    }


def test_prepare_local_hour_of_week_and_bottom_centre() -> None:
    frame = pd.DataFrame([_row(0, 23, x=200, y=450), _row(6, 1, camera="unknown")])
    out = prepare(frame, tz="Europe/Paris", frame_sizes=SIZE)
    # Monday 23:10 UTC is Tuesday 00:10 in Paris (UTC+1 in November).
    assert list(out["hour_of_week"]) == [24, 6 * 24 + 2]
    assert out["bx"][0] == pytest.approx(0.25) and out["by"][0] == pytest.approx(0.75)
    assert np.isnan(out["bx"][1])  # frame size unknown: no position


def test_activity_counts_combine_across_batches_exactly() -> None:
    rows = [_row(d, 9) for d in range(14)] + [_row(d, 23, zone="gate") for d in (0, 7)]
    whole = activity_counts(prepare(pd.DataFrame(rows), tz="UTC", frame_sizes=SIZE))
    parts = [
        activity_counts(prepare(pd.DataFrame(rows[i : i + 5]), tz="UTC", frame_sizes=SIZE))
        for i in range(0, len(rows), 5)
    ]
    keys = ["camera_id", "zone", "label", "hour_of_week"]
    combined = combine_counts(parts, keys).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(combined, whole.sort_values(keys).reset_index(drop=True))
    profile = activity_profile(combined, weeks=2.0)
    monday_9 = profile[(profile["hour_of_week"] == 9) & (profile["zone"] == "")]
    assert list(monday_9["per_week"]) == [1.0]
    assert profile[profile["zone"] == "gate"]["per_week"].tolist() == [1.0]
    with pytest.raises(ValueError, match="weeks"):
        activity_profile(combined, weeks=0)


def test_mask_suggested_where_false_positives_cluster() -> None:
    # A flag in the top-left corner: 6 false positives across two neighbouring cells; one
    # true positive elsewhere; people elsewhere with true verdicts.
    rows = [_row(d, 12, x=50, y=60, verdict="false_positive") for d in range(4)]
    rows += [_row(d, 13, x=150, y=60, verdict="false_positive") for d in range(2)]
    rows += [_row(d, 14, x=150, y=60, verdict=None) for d in range(2)]  # unjudged, same cell
    rows += [_row(d, 15, x=600, y=500, verdict="true_positive") for d in range(5)]
    rows += [_row(0, 16, x=60, y=70, verdict="false_positive", label="car")]
    cells = verdict_cells(prepare(pd.DataFrame(rows), tz="UTC", frame_sizes=SIZE), grid=8)
    [mask] = mask_suggestions(cells, grid=8, min_false_positives=2, min_false_share=0.8)
    assert (mask.camera_id, mask.label) == ("gate", "person")
    assert mask.polygon == ((0.0, 0.0), (0.25, 0.0), (0.25, 0.125), (0.0, 0.125))
    assert (mask.false_positives, mask.true_positives_lost) == (6, 0)
    assert mask.detections_share == pytest.approx(9 / 14)  # 8 person + 1 car of 14 events
    # One false positive per cell is not a pattern at these thresholds.
    assert mask_suggestions(cells, grid=8, min_false_positives=5, min_false_share=0.8) == []


def test_quiet_hours_become_rule_suggestions_wrapping_midnight() -> None:
    # People at the gate every day 06:00-21:59, never 22:00-05:59.
    rows = [_row(d, h, zone="gate") for d in range(7) for h in range(6, 22)]
    counts = activity_counts(prepare(pd.DataFrame(rows), tz="UTC", frame_sizes=SIZE))
    [rule] = rule_suggestions(activity_profile(counts, weeks=1.0), max_per_week=0.5)
    assert (rule.camera_id, rule.zone, rule.label) == ("gate", "gate", "person")
    assert (rule.start_hour, rule.end_hour, rule.events_per_week) == (22, 6, 0.0)
    assert "between 22:00 and 06:00" in rule.reason
    # Too little activity overall: nothing to contrast against.
    sparse = activity_counts(prepare(pd.DataFrame(rows[:3]), tz="UTC", frame_sizes=SIZE))
    assert rule_suggestions(activity_profile(sparse, weeks=1.0)) == []


def test_noisy_rule_gets_a_score_threshold() -> None:
    alerts = pd.DataFrame(
        [{"rule_id": "r1", "score": 0.3 + 0.01 * i, "verdict": "false_positive"} for i in range(8)]
        + [{"rule_id": "r1", "score": 0.8, "verdict": "true_positive"} for _ in range(3)]
        + [{"rule_id": "r1", "score": 0.35, "verdict": "true_positive"}]
        + [{"rule_id": "r2", "score": 0.9, "verdict": "true_positive"} for _ in range(12)]
    )
    [tight] = tightening_suggestions(alerts, min_alerts=10)
    assert (tight.rule_id, tight.alerts, tight.false_positives) == ("r1", 12, 8)
    assert (tight.min_score, tight.false_positives_removed, tight.true_positives_lost) == (
        0.38,
        8,
        1,
    )
