"""RuleGen end to end, Ray-free: history batches -> partial counts -> suggestions -> backtests.

The steps are split so that an engine can run the per-batch ones wherever it likes
(``sentinel.actors.rulegen`` runs them through Ray Data's ``map_batches``) and the rest on one
process; :func:`run_pandas` runs them all on one process, batch by batch, and is the reference
the Ray job is compared with:

1. :func:`prepare_batch` (per batch): the history frame plus mining's grouping columns;
2. :func:`mining_partials` (per batch): activity counts, verdict cells, the rule-raised alerts;
3. :func:`candidates` (once, on the combined partials): mask, rule and tightening suggestions,
   each with the :data:`~sentinel.rules.backtest.Filter` it reduces to;
4. :func:`sentinel.rules.backtest.backtest_partial` (per batch) of all those filters at once,
   then :func:`results` (once): each suggestion with its backtest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from sentinel.rules import backtest as bt
from sentinel.rules import mining
from sentinel.rules.history import history_frame

__all__ = [
    "Candidate",
    "MiningPartials",
    "RuleGenSettings",
    "Suggestion",
    "candidates",
    "combine_partials",
    "mining_partials",
    "plain_batch",
    "prepare_batch",
    "results",
    "run_pandas",
]

SuggestionKind = Literal["mask", "rule", "tightening"]
ACTIVITY_KEYS = ("camera_id", "zone", "label", "hour_of_week")
CELL_KEYS = ("camera_id", "label", "row", "col")
ALERT_COLUMNS = ("rule_id", "score", "verdict")


@dataclass(frozen=True, slots=True)
class RuleGenSettings:
    """How RuleGen reads the history and what it calls worth suggesting.

    Attributes:
        timezone: The site's IANA zone (hours of the week are local).
        frame_sizes: ``camera_id -> (width, height)`` in pixels; cameras missing here get no
            mask suggestion (boxes cannot be normalised).
        grid: Cells per side of the mask grid.
        min_false_positives: False positives a mask cell needs.
        min_false_share: Share of false verdicts a mask cell needs.
        max_per_week: Events a week under which an hour is quiet (rule suggestions).
        min_quiet_hours: Consecutive quiet hours a rule suggestion needs.
        min_busy_per_week: Events a week a camera x zone x label needs to be judged at all.
        min_alerts: Judged alerts a rule needs before it can be called noisy.
        min_noisy_share: Share of false positives that makes a rule noisy.
    """

    timezone: str = "UTC"
    frame_sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    grid: int = 16
    min_false_positives: int = 5
    min_false_share: float = 0.8
    max_per_week: float = 0.5
    min_quiet_hours: int = 4
    min_busy_per_week: float = 7.0
    min_alerts: int = 10
    min_noisy_share: float = 0.5

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, but got {self.grid}")
        bt.RuleFilter(timezone=self.timezone)  # validates the zone name


@dataclass(frozen=True, slots=True)
class Candidate:
    """A suggestion and the filter its backtest runs."""

    kind: SuggestionKind
    suggestion: mining.MaskSuggestion | mining.RuleSuggestion | mining.TighteningSuggestion
    filter: bt.Filter


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A suggestion with what it would have done over the history."""

    kind: SuggestionKind
    suggestion: mining.MaskSuggestion | mining.RuleSuggestion | mining.TighteningSuggestion
    filter: bt.Filter
    backtest: bt.BacktestResult


@dataclass(frozen=True, slots=True)
class MiningPartials:
    """Partial counts of one batch (or combined ones of several).

    Attributes:
        activity: :func:`sentinel.rules.mining.activity_counts`.
        cells: :func:`sentinel.rules.mining.verdict_cells`.
        alerts: The alerts an operator's rule raised: ``rule_id, score, verdict`` (rows, not
            counts: they are few, and tightening needs their scores).
        first_s: Earliest start (epoch seconds; NaN when empty).
        last_s: Latest start (epoch seconds; NaN when empty).
    """

    activity: pd.DataFrame
    cells: pd.DataFrame
    alerts: pd.DataFrame
    first_s: float
    last_s: float

    @property
    def days(self) -> float:
        """The history's span in days: first to last event, at least one."""
        if math.isnan(self.first_s) or math.isnan(self.last_s):
            return 1.0
        return max((self.last_s - self.first_s) / bt.SECONDS_PER_DAY, 1.0)


def plain_batch(batch: pd.DataFrame) -> pd.DataFrame:
    """A batch whose Arrow-backed columns (what a Ray Data block becomes in pandas) are plain
    again: NumPy numbers and datetimes, Python objects with None for null.

    The steps compare with ``==`` and count with ``astype(int)``; on Arrow columns a null
    (a whole block without a verdict has the Arrow type ``null``) would make those fail.
    """
    out = batch.copy()
    for name in out.columns:
        dtype = out[name].dtype
        if not isinstance(dtype, pd.ArrowDtype):
            continue
        kind, column = dtype.kind, out[name]  # NumPy's kind letter of the Arrow type
        if kind == "M":
            out[name] = pd.to_datetime(column, utc=True)
        elif kind == "b":
            out[name] = column.fillna(False).astype(bool)
        elif kind in "iu" and not column.isna().any():
            out[name] = column.astype("int64")
        elif kind in "iuf":
            out[name] = column.astype("float64")
        else:  # strings, null, lists: Python objects, None for null
            values = column.astype("object")
            out[name] = values.where(values.notna(), None)
    return out


def prepare_batch(raw: pd.DataFrame, settings: RuleGenSettings) -> pd.DataFrame:
    """A batch of :func:`sentinel.rules.history.history_sql` rows, ready for every later step."""
    return mining.prepare(
        history_frame(plain_batch(raw)), tz=settings.timezone, frame_sizes=settings.frame_sizes
    )


def mining_partials(prepared: pd.DataFrame, settings: RuleGenSettings) -> MiningPartials:
    """The per-batch mining step over a :func:`prepare_batch` frame."""
    prepared = plain_batch(prepared)
    raised = prepared[prepared["alerted"] & prepared["rule_id"].notna()]
    return MiningPartials(
        activity=mining.activity_counts(prepared),
        cells=mining.verdict_cells(prepared, grid=settings.grid),
        alerts=raised.loc[:, list(ALERT_COLUMNS)].reset_index(drop=True),
        first_s=float(prepared["started_s"].min()) if len(prepared) else math.nan,
        last_s=float(prepared["started_s"].max()) if len(prepared) else math.nan,
    )


def combine_partials(parts: Iterable[MiningPartials]) -> MiningPartials:
    """Combines the partials of several batches (any grouping, any order)."""
    items = list(parts)
    alerts = [p.alerts for p in items if len(p.alerts)]
    firsts = [p.first_s for p in items if not math.isnan(p.first_s)]
    lasts = [p.last_s for p in items if not math.isnan(p.last_s)]
    return MiningPartials(
        activity=mining.combine_counts((p.activity for p in items), ACTIVITY_KEYS),
        cells=mining.combine_counts((p.cells for p in items), CELL_KEYS),
        alerts=(
            pd.concat(alerts, ignore_index=True)
            if alerts
            else pd.DataFrame(columns=list(ALERT_COLUMNS))
        ),
        first_s=min(firsts) if firsts else math.nan,
        last_s=max(lasts) if lasts else math.nan,
    )


def candidates(partials: MiningPartials, settings: RuleGenSettings) -> list[Candidate]:
    """Mask, rule and tightening suggestions from combined partials, in that order (each
    sorted as mining sorts them), with the filters their backtests run."""
    out: list[Candidate] = []
    for mask in mining.mask_suggestions(
        partials.cells,
        grid=settings.grid,
        min_false_positives=settings.min_false_positives,
        min_false_share=settings.min_false_share,
    ):
        out.append(Candidate("mask", mask, bt.MaskFilter.from_suggestion(mask)))
    if len(partials.activity):
        profile = mining.activity_profile(partials.activity, weeks=partials.days / 7.0)
        for rule in mining.rule_suggestions(
            profile,
            max_per_week=settings.max_per_week,
            min_quiet_hours=settings.min_quiet_hours,
            min_busy_per_week=settings.min_busy_per_week,
        ):
            flt = bt.RuleFilter(
                camera_ids=frozenset({rule.camera_id}),
                labels=frozenset({rule.label}),
                zones=frozenset({rule.zone}) if rule.zone else frozenset(),
                hours_of_week=bt.hours_of_week(rule.start_hour, rule.end_hour),
                timezone=settings.timezone,
            )
            out.append(Candidate("rule", rule, flt))
    for noisy in mining.tightening_suggestions(
        partials.alerts, min_alerts=settings.min_alerts, min_false_share=settings.min_noisy_share
    ):
        flt = bt.RuleFilter(rule_id=noisy.rule_id, min_score=noisy.min_score)
        out.append(Candidate("tightening", noisy, flt))
    return out


def results(found: Sequence[Candidate], counts: pd.DataFrame, *, days: float) -> list[Suggestion]:
    """Each candidate with its backtest, from the combined backtest counts of its filters."""
    tests = bt.finish(counts, [c.filter for c in found], days=days)
    return [
        Suggestion(c.kind, c.suggestion, c.filter, result)
        for c, result in zip(found, tests, strict=True)
    ]


def run_pandas(
    raw: pd.DataFrame, settings: RuleGenSettings, *, batch_rows: int | None = None
) -> list[Suggestion]:
    """All of RuleGen on one process over history rows (``history_sql``'s columns).

    Args:
        raw: The history rows.
        settings: What to look for.
        batch_rows: Run the per-batch steps on slices of this many rows (None: one batch), as
            an engine would: the result does not depend on it.
    """
    size = batch_rows or max(len(raw), 1)
    prepared = [prepare_batch(raw.iloc[i : i + size], settings) for i in range(0, len(raw), size)]
    partials = combine_partials(mining_partials(p, settings) for p in prepared)
    found = candidates(partials, settings)
    filters = [c.filter for c in found]
    counts = bt.combine(bt.backtest_partial(p, filters) for p in prepared)
    return results(found, counts, days=partials.days)
