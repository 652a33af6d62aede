from __future__ import annotations

from collections import Counter

import pytest

from sentinel.domain.experiments import (
    Variant,
    VariantOutcome,
    VariantReport,
    assign,
    percentile,
    report,
    wilson_interval,
)

A = Variant("a", "v1", 0.7)
B = Variant("b", "v2", 0.3)


def test_assign_is_deterministic_and_follows_weights() -> None:
    picks = [assign("exp-1", f"ev-{i}", [A, B]).name for i in range(10_000)]
    assert picks == [assign("exp-1", f"ev-{i}", [A, B]).name for i in range(10_000)]
    assert 6_800 <= Counter(picks)["a"] <= 7_200
    other = [assign("exp-2", f"ev-{i}", [A, B]).name for i in range(10_000)]
    assert other != picks  # experiments split independently


def test_assign_single_variant_and_unnormalised_weights() -> None:
    only = Variant("only", "v1", 5.0)
    assert {assign("e", str(i), [only]) for i in range(100)} == {only}
    thirds = [Variant("x", "v1", 1.0), Variant("y", "v2", 2.0)]
    share = Counter(assign("e", str(i), thirds).name for i in range(9_000))["y"] / 9_000
    assert 0.64 <= share <= 0.69


@pytest.mark.parametrize(
    ("variants", "error"),
    [
        ([], "at least one variant"),
        ([A, Variant("a", "v3", 1.0)], "names must be unique"),
        ([A, Variant("c", "v3", 0.0)], "weight must be > 0"),
        ([A, Variant("c", "v3", -1.0)], "weight must be > 0"),
        ([A, Variant("c", "v3", float("inf"))], "weight must be > 0"),
    ],
)
def test_assign_validation(variants: list[Variant], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        assign("e", "ev", variants)


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (5, 20, (0.1119, 0.4687)),
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (1, 2, (0.0945, 0.9055)),
        (50, 100, (0.4038, 0.5962)),
    ],
)
def test_wilson_interval(successes: int, n: int, expected: tuple[float, float]) -> None:
    assert wilson_interval(successes, n) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("successes", "n"), [(0, 0), (3, 2), (-1, 5)])
def test_wilson_interval_validation(successes: int, n: int) -> None:
    with pytest.raises(ValueError, match="need n > 0"):
        wilson_interval(successes, n)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([15.0, 20.0, 35.0, 40.0, 50.0], 30, 20.0),
        ([15.0, 20.0, 35.0, 40.0, 50.0], 50, 35.0),
        ([15.0, 20.0, 35.0, 40.0, 50.0], 100, 50.0),
        ([3.0], 95, 3.0),
        ([float(v) for v in range(1, 101)], 95, 95.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def _outcome(
    variant: str,
    *,
    alert: bool = False,
    latency: float | None = 100.0,
    tokens: int = 100,
    verdict: str | None = None,
    parse_failure: bool = False,
) -> VariantOutcome:
    return VariantOutcome(
        variant, not parse_failure, alert, parse_failure, latency, tokens, verdict
    )


def test_report_matches_scripted_outcomes() -> None:
    outcomes = (
        [
            _outcome("a", alert=True, latency=float(i), verdict="false_positive")
            for i in (1, 2, 3, 4, 5)
        ]
        + [
            _outcome("a", alert=True, latency=float(i), verdict="true_positive")
            for i in range(6, 21)
        ]
        + [_outcome("a", latency=None, tokens=0, parse_failure=True)] * 2
        + [_outcome("a", tokens=400, latency=1000.0)] * 3
        + [_outcome("b", alert=False, latency=50.0, tokens=10)]
    )
    assert report(reversed(outcomes)) == [
        VariantReport(
            variant="a",
            events=25,
            decisions=23,
            alerts=20,
            parse_failures=2,
            latency_p50_ms=12.0,  # 23 latencies: 1..20 then 1000 x3; rank ceil(11.5) = 12
            latency_p95_ms=1000.0,  # rank ceil(21.85) = 22
            mean_tokens=(20 * 100 + 3 * 400) / 25,
            true_positives=15,
            false_positives=5,
            false_alarm_rate=0.25,
            false_alarm_ci95=wilson_interval(5, 20),
        ),
        VariantReport("b", 1, 1, 0, 0, 50.0, 50.0, 10.0, 0, 0, None, None),
    ]
    ci = report(outcomes)[0].false_alarm_ci95
    assert ci is not None
    assert ci == pytest.approx((0.1119, 0.4687), abs=1e-4)


def test_report_without_latencies_and_empty_input() -> None:
    assert report([]) == []
    (only,) = report([_outcome("a", latency=None, parse_failure=True, tokens=7)])
    assert (only.decisions, only.parse_failures, only.latency_p50_ms, only.mean_tokens) == (
        0,
        1,
        None,
        7.0,
    )


def test_outcome_rejects_unknown_verdict() -> None:
    with pytest.raises(ValueError, match="verdict must be"):
        _outcome("a", verdict="maybe")
