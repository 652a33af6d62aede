"""Prompt A/B experiments: deterministic variant assignment and per-variant reports.

Assignment hashes the experiment and event ids, so replaying an event (or a second replica
seeing it) always picks the same variant and no state is shared. Reports carry the false
alarm rate with its Wilson score interval, which stays sensible for the small verdict
counts an operator produces in a week.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Verdict = str  # "true_positive" | "false_positive"
TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment: a prompt version and its share of events."""

    name: str
    prompt_version: str
    weight: float


def assign(experiment_id: str, event_id: str, variants: Sequence[Variant]) -> Variant:
    """Picks the variant for an event, deterministically.

    ``sha256(experiment_id + ":" + event_id)`` is mapped to [0, 1) and compared with the
    cumulative normalised weights. (The separator keeps ``("ab", "c")`` and ``("a", "bc")``
    apart.)

    Args:
        experiment_id: The experiment; different experiments split independently.
        event_id: The event being decided.
        variants: The arms, in a fixed order.

    Returns:
        The chosen variant.

    Raises:
        ValueError: If there are no variants, names repeat, or a weight is not > 0.
    """
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, but got {names}")
    for v in variants:
        if not (math.isfinite(v.weight) and v.weight > 0):
            raise ValueError(f"variant {v.name!r}: weight must be > 0, but got {v.weight}")
    digest = hashlib.sha256(f"{experiment_id}:{event_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64 * sum(v.weight for v in variants)
    cumulative = 0.0
    for v in variants:
        cumulative += v.weight
        if u < cumulative:
            return v
    return variants[-1]  # u == total after rounding


@dataclass(slots=True)
class VariantOutcome:
    """What happened to one event handled under a variant.

    Attributes:
        variant: Variant name.
        decided: Whether the model produced a valid decision.
        alert: Whether the decision (if any) was to alert.
        parse_failure: Whether the model's output failed to parse.
        latency_ms: Model latency, if a call completed.
        tokens: Tokens used (prompt plus completion).
        verdict: The operator's review of an alert, if any.
    """

    variant: str
    decided: bool
    alert: bool
    parse_failure: bool
    latency_ms: float | None
    tokens: int
    verdict: Verdict | None

    def __post_init__(self) -> None:
        if self.verdict not in (None, TRUE_POSITIVE, FALSE_POSITIVE):
            raise ValueError(
                f"verdict must be {TRUE_POSITIVE!r}, {FALSE_POSITIVE!r} or None, "
                f"but got {self.verdict!r}"
            )


@dataclass(frozen=True, slots=True)
class VariantReport:
    """Per-variant numbers; rates are None when there is nothing to divide by."""

    variant: str
    events: int
    decisions: int
    alerts: int
    parse_failures: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mean_tokens: float
    true_positives: int
    false_positives: int
    false_alarm_rate: float | None
    false_alarm_ci95: tuple[float, float] | None


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion.

    Args:
        successes: Number of successes, 0..n.
        n: Number of trials, > 0.
        z: Standard normal quantile (1.96 for 95 %).

    Returns:
        ``(low, high)``, both within [0, 1].

    Raises:
        ValueError: If ``n`` <= 0 or ``successes`` is outside 0..n.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need n > 0 and 0 <= successes <= n, but got {successes} of {n}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``q`` % at or below it.

    Raises:
        ValueError: If ``values`` is empty or ``q`` is outside (0, 100].
    """
    if not values or not 0 < q <= 100:
        raise ValueError(f"need values and 0 < q <= 100, but got {len(values)} values, q={q}")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def _report(name: str, outcomes: list[VariantOutcome]) -> VariantReport:
    latencies = [o.latency_ms for o in outcomes if o.latency_ms is not None]
    tp = sum(o.verdict == TRUE_POSITIVE for o in outcomes)
    fp = sum(o.verdict == FALSE_POSITIVE for o in outcomes)
    return VariantReport(
        variant=name,
        events=len(outcomes),
        decisions=sum(o.decided for o in outcomes),
        alerts=sum(o.decided and o.alert for o in outcomes),
        parse_failures=sum(o.parse_failure for o in outcomes),
        latency_p50_ms=percentile(latencies, 50) if latencies else None,
        latency_p95_ms=percentile(latencies, 95) if latencies else None,
        mean_tokens=sum(o.tokens for o in outcomes) / len(outcomes),
        true_positives=tp,
        false_positives=fp,
        false_alarm_rate=fp / (tp + fp) if tp + fp else None,
        false_alarm_ci95=wilson_interval(fp, tp + fp) if tp + fp else None,
    )


def report(outcomes: Iterable[VariantOutcome]) -> list[VariantReport]:
    """Summarises outcomes per variant, in variant-name order.

    Alerts count only decided events; mean tokens are over all the variant's events;
    the false alarm rate is ``fp / (tp + fp)`` over reviewed alerts, with its 95 % Wilson
    interval.
    """
    by_variant: dict[str, list[VariantOutcome]] = {}
    for outcome in outcomes:
        by_variant.setdefault(outcome.variant, []).append(outcome)
    return [_report(name, by_variant[name]) for name in sorted(by_variant)]
