"""RuleGen on one process: a seeded history yields a mask, a rule and a tightening suggestion,
each with its backtest, and the result does not depend on how the history is batched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from sentinel.rules.backtest import MaskFilter, RuleFilter
from sentinel.rules.mining import MaskSuggestion, RuleSuggestion, TighteningSuggestion
from sentinel.rules.rulegen import RuleGenSettings, plain_batch, run_pandas

T0 = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday
SETTINGS = RuleGenSettings(timezone="UTC", frame_sizes={"gate": (1000, 1000)})


def box_with_bottom_centre(x: float, y: float) -> str:
    return json.dumps([x - 20, y - 80, x + 20, y])


def seeded_history() -> pd.DataFrame:
    """Four weeks of one gate camera.

    - 200 people by day (08:00-19:59) anywhere in the lower half: a night-time rule;
    - 12 cars judged false in the cell x 0.25-0.3125, y 0.5-0.5625 (grid 16): a mask;
    - 20 alerts of rule r1: 14 false at scores 0.30-0.43, 6 true at 0.80-0.85: tighten it.
    """
    rng = np.random.default_rng(7)
    rows: list[dict[str, object]] = []

    def add(label: str, at: datetime, x: float, y: float, score: float, **extra: object) -> None:
        rows.append(
            {
                "event_id": f"e{len(rows)}",
                "camera_id": "gate",
                "label": label,
                "score": score,
                "started_at": at,
                "last_seen_at": at + timedelta(seconds=5),
                "box": box_with_bottom_centre(x, y),
                "zones": None,
                "verdict": extra.get("verdict"),
                "alerted": extra.get("alerted", False),
                "rule_id": extra.get("rule_id"),
            }
        )

    for _ in range(200):
        at = T0 + timedelta(days=int(rng.integers(0, 28)), hours=int(rng.integers(8, 20)))
        add("person", at, float(rng.uniform(0, 1000)), float(rng.uniform(600, 1000)), 0.9)
    for i in range(12):
        at = T0 + timedelta(days=i, hours=10)
        x, y = 250 + float(rng.uniform(5, 55)), 500 + float(rng.uniform(5, 55))
        add("car", at, x, y, 0.6, verdict="false_positive")
    for i in range(20):
        at = T0 + timedelta(days=i, hours=9)
        false = i < 14
        score = 0.30 + 0.01 * i if false else 0.66 + 0.01 * i
        add("bicycle", at, 900.0, 100.0, round(score, 2), alerted=True, rule_id="r1",
            verdict="false_positive" if false else "true_positive")  # fmt: skip
    add("person", T0 + timedelta(days=27, hours=23), 10.0, 990.0, 0.9)  # the last event
    return pd.DataFrame(rows)


def test_suggestions_with_their_backtests() -> None:
    found = run_pandas(seeded_history(), SETTINGS)
    kinds = [s.kind for s in found]
    assert kinds.count("mask") == 1 and kinds.count("tightening") == 1
    assert "rule" in kinds

    mask = next(s for s in found if s.kind == "mask")
    assert isinstance(mask.suggestion, MaskSuggestion)
    assert mask.suggestion.label == "car"
    assert mask.suggestion.false_positives == 12
    assert mask.filter == MaskFilter("gate", frozenset({"car"}), 0.25, 0.5, 0.3125, 0.5625)
    assert mask.backtest.false_positives_removed == 12
    assert mask.backtest.true_positives_lost == 0
    assert mask.backtest.cpu_share == pytest.approx(12 / 233)

    rule = next(s for s in found if s.kind == "rule" and s.suggestion.label == "person")  # type: ignore[union-attr]
    assert isinstance(rule.suggestion, RuleSuggestion)
    assert (rule.suggestion.start_hour, rule.suggestion.end_hour) == (20, 8)
    assert isinstance(rule.filter, RuleFilter)
    assert rule.backtest.alerts == 1  # the one person at 23:00
    assert rule.backtest.cpu_share == 0.0

    tight = next(s for s in found if s.kind == "tightening")
    assert isinstance(tight.suggestion, TighteningSuggestion)
    assert tight.suggestion.min_score == 0.44
    assert tight.filter == RuleFilter(rule_id="r1", min_score=0.44)
    # Raised to 0.44, r1 keeps its 6 true alerts and drops all 14 false ones.
    assert (tight.backtest.alerts, tight.backtest.true_positives) == (6, 6)
    assert tight.backtest.precision == 1.0 and tight.backtest.recall == 1.0


def test_batching_does_not_change_the_result() -> None:
    history = seeded_history()
    whole = run_pandas(history, SETTINGS)
    shuffled = history.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert run_pandas(shuffled, SETTINGS, batch_rows=17) == whole


def test_empty_history_suggests_nothing() -> None:
    assert run_pandas(seeded_history().iloc[0:0], SETTINGS) == []


def test_arrow_backed_batches_become_plain() -> None:
    # What a Ray Data block looks like in pandas: Arrow types, a whole column of nulls.
    arrow = pd.DataFrame(
        {
            "verdict": pd.Series([None, None], dtype=pd.ArrowDtype(pa.null())),
            "label": pd.Series(["car", None], dtype=pd.ArrowDtype(pa.string())),
            "alerted": pd.Series([True, None], dtype=pd.ArrowDtype(pa.bool_())),
            "count": pd.Series([3, 4], dtype=pd.ArrowDtype(pa.int64())),
            "score": pd.Series([0.5, None], dtype=pd.ArrowDtype(pa.float64())),
        }
    )
    plain = plain_batch(arrow)
    assert plain["verdict"].tolist() == [None, None]
    assert (plain["verdict"] == "false_positive").astype(int).tolist() == [0, 0]
    assert plain["label"].tolist() == ["car", None]
    assert plain["alerted"].tolist() == [True, False]
    assert plain["count"].dtype == np.int64 and (plain["count"] % 2).tolist() == [1, 0]
    assert plain["score"].isna().tolist() == [False, True]
