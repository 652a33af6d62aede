"""Backtests: what a rule or a mask would have done over the event and verdict history.

Ray-free and associative like :mod:`sentinel.rules.mining`: :func:`backtest_partial` counts one
batch of history rows for any number of filters, :func:`combine` sums the partial counts of
several batches (in any grouping and order), and :func:`finish` turns the combined counts into
one :class:`BacktestResult` per filter. So a single process runs the three steps over a whole
frame, and Ray Data runs ``backtest_partial`` through ``map_batches`` and the other two on the
driver, with identical results.

The history rows carry :data:`sentinel.rules.mining.EVENT_COLUMNS`; filters may need more:
``bx``/``by`` (the box's normalised bottom centre, from :func:`sentinel.rules.mining.prepare`)
for a :class:`MaskFilter`, ``dwell_s`` for a :class:`RuleFilter` with ``min_dwell_s`` and
``rule_id`` (the rule that raised the event's alert) for one with ``rule_id``.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sentinel.rules.mining import FALSE_POSITIVE, HOURS_PER_WEEK, TRUE_POSITIVE, MaskSuggestion

__all__ = [
    "BacktestResult",
    "Filter",
    "MaskFilter",
    "RuleFilter",
    "backtest",
    "backtest_partial",
    "combine",
    "finish",
    "hours_of_week",
]

SECONDS_PER_DAY = 86_400.0
_EPOCH = pd.Timestamp(0, tz="UTC")
_SUMS = ("matched", "true_positives", "false_positives", "scope_events", "scope_true")
COUNT_COLUMNS = ("filter", *_SUMS, "first_s", "last_s")


def hours_of_week(start_hour: int, end_hour: int, days: Iterable[int] = range(7)) -> frozenset[int]:
    """The hours of the week (0 = Monday 00:00) from ``start_hour`` to ``end_hour`` (exclusive,
    wrapping past midnight into the next day) on each of ``days`` (0 = Monday).

    ``start_hour == end_hour`` is the whole day.
    """
    for name, hour in (("start_hour", start_hour), ("end_hour", end_hour)):
        if not 0 <= hour <= 23:
            raise ValueError(f"{name} must be in 0..23, but got {hour}")
    length = (end_hour - start_hour) % 24 or 24
    out: set[int] = set()
    for day in days:
        if not 0 <= day <= 6:
            raise ValueError(f"days must be in 0..6 (0 = Monday), but got {day}")
        out.update((day * 24 + start_hour + i) % HOURS_PER_WEEK for i in range(length))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class RuleFilter:
    """What a rule reduces to for a backtest: the history rows it would have alerted on.

    Attributes:
        camera_ids: Cameras it watches; empty: all.
        labels: Labels it alerts on; empty: all.
        zones: Zones it alerts in: a row matches when the object was in one of them (the
            history's ``zones`` column, else its ``zone``); empty: any, "no zone" too.
        min_score: Lowest detection score it accepts.
        hours_of_week: Local hours of the week it is active (0 = Monday 00:00, see
            :func:`hours_of_week`); None: always.
        timezone: The IANA zone ``hours_of_week`` is in.
        min_dwell_s: Shortest stay (``dwell_s`` column, seconds) it alerts on; None: any.
        rule_id: Only the alerts this rule raised (``rule_id`` column): for a tightened rule,
            whose own filter lives in the rule store, the history it is judged on is its own
            past alerts; None: any row.
    """

    camera_ids: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()
    min_score: float = 0.0
    hours_of_week: frozenset[int] | None = None
    timezone: str = "UTC"
    min_dwell_s: float | None = None
    rule_id: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], but got {self.min_score}")
        if self.hours_of_week is not None:
            bad = sorted(h for h in self.hours_of_week if not 0 <= h < HOURS_PER_WEEK)
            if bad:
                raise ValueError(f"hours_of_week must be in 0..167, but got {bad}")
        if self.min_dwell_s is not None and self.min_dwell_s < 0:
            raise ValueError(f"min_dwell_s must be >= 0, but got {self.min_dwell_s}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone must be an IANA name, but got {self.timezone!r}") from exc


@dataclass(frozen=True, slots=True)
class MaskFilter:
    """An object mask: the detections of ``labels`` on ``camera_id`` whose bottom centre
    (``bx``, ``by``, normalised) lies in the rectangle ``[x0, x1) x [y0, y1)`` are dropped.

    Attributes:
        camera_id: The camera.
        labels: Labels it masks; empty: all.
        x0: Left edge (0-1).
        y0: Top edge (0-1).
        x1: Right edge (0-1), exclusive; 1 includes the right border.
        y1: Bottom edge (0-1), exclusive; 1 includes the bottom border.
    """

    camera_id: str
    labels: frozenset[str]
    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.x0 < self.x1 <= 1.0 and 0.0 <= self.y0 < self.y1 <= 1.0):
            raise ValueError(
                "mask must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, but got "
                f"x0={self.x0}, y0={self.y0}, x1={self.x1}, y1={self.y1}"
            )

    @classmethod
    def from_suggestion(cls, suggestion: MaskSuggestion) -> MaskFilter:
        """The mask a :class:`MaskSuggestion` proposes (its polygon's bounding rectangle)."""
        xs = [x for x, _ in suggestion.polygon]
        ys = [y for _, y in suggestion.polygon]
        return cls(
            suggestion.camera_id,
            frozenset({suggestion.label}),
            min(xs),
            min(ys),
            max(xs),
            max(ys),
        )


Filter = RuleFilter | MaskFilter


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """What one filter would have done over the history.

    For a rule, ``matched`` are the alerts it would have raised; for a mask, the detections it
    would have removed (its false positives are then false alarms saved, its true positives
    real sightings lost).

    Attributes:
        matched: Rows the filter matches.
        per_day: ``matched`` per day of the history's span.
        days: The span: first to last event of the history (at least one day), unless given.
        true_positives: Matched rows operators judged true.
        false_positives: Matched rows operators judged false.
        unjudged: Matched rows without a verdict.
        precision: ``tp / (tp + fp)``; None when none was judged.
        recall: ``tp`` over all true-positive verdicts on the filter's cameras; None when there
            are none. For a mask this is the share of the real sightings it loses.
        cpu_share: Share of the detector, tracker and alerting work on the filter's cameras
            it saves: a mask's matched detections over the camera's. A rule runs after
            detection and removes none, so 0.0; its cost is its alerts (``per_day`` LLM agent
            calls and notifications).
    """

    matched: int
    per_day: float
    days: float
    true_positives: int
    false_positives: int
    unjudged: int
    precision: float | None
    recall: float | None
    cpu_share: float

    @property
    def alerts(self) -> int:
        """A rule's alerts (``matched``)."""
        return self.matched

    @property
    def detections_removed(self) -> int:
        """A mask's dropped detections (``matched``)."""
        return self.matched

    @property
    def false_positives_removed(self) -> int:
        """A mask's saved false alarms (``false_positives``)."""
        return self.false_positives

    @property
    def true_positives_lost(self) -> int:
        """A mask's lost real sightings (``true_positives``)."""
        return self.true_positives


def backtest_partial(batch: pd.DataFrame, filters: Sequence[Filter]) -> pd.DataFrame:
    """Partial counts of one batch of history, one row per filter (by position): ``matched``,
    ``true_positives``, ``false_positives``, ``scope_events`` and ``scope_true`` (rows and
    true-positive verdicts on the filter's cameras), ``first_s``/``last_s`` (the batch's
    earliest and latest ``started_at``, epoch seconds; NaN when empty).

    Raises:
        ValueError: If a filter needs a column the batch lacks.
    """
    n = len(batch)
    started = pd.to_datetime(batch["started_at"], utc=True)
    # total_seconds, not an int64 view: pandas 3 may keep microseconds rather than nanoseconds.
    seconds = (started - _EPOCH).dt.total_seconds().to_numpy()
    first = float(seconds.min()) if n else math.nan
    last = float(seconds.max()) if n else math.nan
    verdict = batch["verdict"].astype(object).to_numpy()
    true = verdict == TRUE_POSITIVE
    false = verdict == FALSE_POSITIVE
    cameras = batch["camera_id"].astype(str)
    local_how: dict[str, np.ndarray] = {}
    rows = []
    for index, flt in enumerate(filters):
        if isinstance(flt, MaskFilter):
            scope = (cameras == flt.camera_id).to_numpy()
            match = scope & _mask_match(batch, flt)
        else:
            scope = (
                cameras.isin(flt.camera_ids).to_numpy()
                if flt.camera_ids
                else np.ones(n, dtype=bool)
            )
            match = scope & _rule_match(batch, flt, started, local_how)
        rows.append(
            {
                "filter": index,
                "matched": int(match.sum()),
                "true_positives": int((match & true).sum()),
                "false_positives": int((match & false).sum()),
                "scope_events": int(scope.sum()),
                "scope_true": int((scope & true).sum()),
                "first_s": first,
                "last_s": last,
            }
        )
    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))


def _need(batch: pd.DataFrame, column: str, why: str) -> pd.Series:
    if column not in batch.columns:
        raise ValueError(f"{why} needs a {column!r} column, but the history has {list(batch)}")
    return batch[column]


def _rule_match(
    batch: pd.DataFrame, flt: RuleFilter, started: pd.Series, cache: dict[str, np.ndarray]
) -> np.ndarray:
    match = np.asarray(batch["score"].astype(float) >= flt.min_score)
    if flt.labels:
        match = match & batch["label"].astype(str).isin(flt.labels).to_numpy()
    if flt.zones:
        if "zones" in batch.columns:
            wanted = flt.zones
            # Tuples here, arrays once Ray Data's Arrow blocks carried them, None for none.
            inside = batch["zones"].map(
                lambda zs: zs is not None and bool(wanted.intersection(list(zs)))
            )
            match = match & inside.to_numpy(dtype=bool)
        else:
            match = match & batch["zone"].astype(object).isin(flt.zones).to_numpy()
    if flt.hours_of_week is not None:
        if flt.timezone not in cache:
            local = started.dt.tz_convert(flt.timezone)
            cache[flt.timezone] = (local.dt.dayofweek * 24 + local.dt.hour).to_numpy()
        match = match & np.isin(cache[flt.timezone], list(flt.hours_of_week))
    if flt.min_dwell_s is not None:
        dwell = _need(batch, "dwell_s", "min_dwell_s").astype(float).to_numpy()
        match = match & (dwell >= flt.min_dwell_s)  # NaN (unknown stay) never matches
    if flt.rule_id is not None:
        match = (
            match & (_need(batch, "rule_id", "rule_id").astype(object) == flt.rule_id).to_numpy()
        )
    return match


def _mask_match(batch: pd.DataFrame, flt: MaskFilter) -> np.ndarray:
    # Clip like mining's grid does, so a point on the bottom or right border is inside the
    # last cell and a mask reaching 1.0 covers it.
    below_one = np.nextafter(1.0, 0.0)
    bx = np.minimum(_need(batch, "bx", "a mask").astype(float).to_numpy(), below_one)
    by = np.minimum(_need(batch, "by", "a mask").astype(float).to_numpy(), below_one)
    match = (bx >= flt.x0) & (bx < flt.x1) & (by >= flt.y0) & (by < flt.y1)  # NaN: outside
    if flt.labels:
        match = match & batch["label"].astype(str).isin(flt.labels).to_numpy()
    return match


def combine(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Combines partial counts of several batches (sums; earliest ``first_s``, latest
    ``last_s``). Associative and commutative: any split of the history gives the same counts."""
    frames = [p for p in parts if len(p)]
    if not frames:
        return pd.DataFrame(columns=list(COUNT_COLUMNS))
    aggs: dict[str, str] = {name: "sum" for name in _SUMS}
    aggs.update(first_s="min", last_s="max")
    return pd.concat(frames).groupby("filter", as_index=False, sort=True).agg(aggs)


def finish(
    counts: pd.DataFrame, filters: Sequence[Filter], *, days: float | None = None
) -> list[BacktestResult]:
    """One result per filter from combined counts.

    Args:
        counts: :func:`combine` of the :func:`backtest_partial` counts of the whole history.
        filters: The filters, in the order they were counted.
        days: The history's span in days; None: from its first to its last event, at least 1.
    """
    if days is not None and days <= 0:
        raise ValueError(f"days must be positive, but got {days}")
    totals = {
        int(row["filter"]): tuple(int(row[k]) for k in _SUMS) for row in counts.to_dict("records")
    }
    span = days if days is not None else _span_days(counts)
    out = []
    for index, flt in enumerate(filters):
        matched, tp, fp, scope_events, scope_true = totals.get(index, (0, 0, 0, 0, 0))
        out.append(
            BacktestResult(
                matched=matched,
                per_day=matched / span,
                days=span,
                true_positives=tp,
                false_positives=fp,
                unjudged=matched - tp - fp,
                precision=tp / (tp + fp) if tp + fp else None,
                recall=tp / scope_true if scope_true else None,
                cpu_share=(
                    matched / scope_events if isinstance(flt, MaskFilter) and scope_events else 0.0
                ),
            )
        )
    return out


def _span_days(counts: pd.DataFrame) -> float:
    if not len(counts):
        return 1.0
    first, last = float(counts["first_s"].min()), float(counts["last_s"].max())
    if math.isnan(first) or math.isnan(last):
        return 1.0
    return max((last - first) / SECONDS_PER_DAY, 1.0)


def backtest(
    history: pd.DataFrame, filters: Sequence[Filter], *, days: float | None = None
) -> list[BacktestResult]:
    """The three steps on one process over a whole history frame."""
    return finish(combine([backtest_partial(history, filters)]), filters, days=days)
