"""RuleGen against the store, on one process: read the history, store the suggestions, backtest
a stored rule. Ray-free (the API runs it in a thread; ``sentinel.actors.rulegen`` is the Ray
Data engine of the mining itself).

- :func:`load_history`: the event and verdict history as :func:`history_sql` selects it, through
  the store's SQLAlchemy engine (PostgreSQL or SQLite);
- :func:`store_suggestions`: a run's suggestions into the suggestion repository, deduplicated
  (:func:`sentinel.rules.suggestions.upsert_action`): new ones inserted, open ones refreshed,
  decided ones kept;
- :func:`backtest_rule`: any stored rule over the history.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sentinel.domain.rule_model import Rule
from sentinel.rules import backtest as bt
from sentinel.rules.history import Dialect, history_frame, history_sql
from sentinel.rules.rulegen import RuleGenSettings, Suggestion, run_pandas
from sentinel.rules.suggestions import draft, rule_filter, upsert_action
from sentinel.store.rule_repo import SuggestionExists, SuggestionRepository

__all__ = [
    "RuleBacktest",
    "StoreCounts",
    "backtest_rule",
    "frame_sizes",
    "has_rule_id",
    "history_since",
    "load_history",
    "run_job",
    "store_suggestions",
]


def _dialect(engine: Engine) -> Dialect:
    name = engine.dialect.name
    if name == "postgresql":
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    raise ValueError(f"RuleGen reads PostgreSQL or SQLite, but got {name!r}")


def history_since(now: datetime, days: float | None) -> datetime | None:
    """The start of a history window of ``days`` ending ``now`` (None: all of it)."""
    if days is None:
        return None
    if days <= 0:
        raise ValueError(f"days must be > 0, but got {days}")
    return now - timedelta(days=days)


def frame_sizes(statuses: Mapping[str, Mapping[str, object]]) -> dict[str, tuple[int, int]]:
    """Cameras' frame sizes from their running statuses (``width``/``height``), for mask
    suggestions (a camera that has not reported a size gets none)."""
    out: dict[str, tuple[int, int]] = {}
    for camera_id, status in statuses.items():
        width, height = status.get("width"), status.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            out[camera_id] = (width, height)
    return out


def has_rule_id(engine: Engine) -> bool:
    """Whether the store's alerts name their rule (``history_sql``'s ``with_rule_id``)."""
    return "rule_id" in {c["name"] for c in sa.inspect(engine).get_columns("alerts")}


def load_history(engine: Engine, *, since: datetime | None = None) -> pd.DataFrame:
    """The history rows (``history_sql``'s columns) of a migrated store."""
    sql, params = history_sql(_dialect(engine), since=since, with_rule_id=has_rule_id(engine))
    with engine.connect() as conn:
        result = conn.exec_driver_sql(sql, params)
        columns = list(result.keys())
        return pd.DataFrame.from_records([tuple(row) for row in result], columns=columns)


def run_job(
    engine: Engine, settings: RuleGenSettings, *, since: datetime | None = None
) -> list[Suggestion]:
    """RuleGen's mining and backtests over the store's history, on this process."""
    return run_pandas(load_history(engine, since=since), settings)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """What storing a run's suggestions did."""

    found: int = 0
    created: int = 0
    updated: int = 0
    kept: int = 0


def store_suggestions(
    repo: SuggestionRepository, found: Iterable[Suggestion], *, timezone: str = "UTC"
) -> StoreCounts:
    """Stores a run's suggestions: a new proposal is inserted, an open one (same dedupe key)
    gets the new figures, a decided one is kept as it is."""
    created = updated = kept = total = 0
    for suggestion in found:
        total += 1
        row = draft(suggestion, timezone=timezone)
        for _ in range(2):  # a concurrent run may insert the same key between read and write
            existing = repo.by_key(row.dedupe_key)
            action = upsert_action(None if existing is None else existing.status)
            if action == "insert":
                try:
                    repo.add(
                        row.kind,
                        row.proposal,
                        camera_id=row.camera_id,
                        backtest=row.backtest,
                        reason=row.reason,
                        dedupe_key=row.dedupe_key,
                    )
                except SuggestionExists:
                    continue
                created += 1
            elif action == "update":
                assert existing is not None
                if not repo.refresh(existing.id, row.proposal, row.backtest, row.reason):
                    continue  # decided meanwhile: read again
                updated += 1
            else:
                kept += 1
            break
        else:
            kept += 1
    return StoreCounts(found=total, created=created, updated=updated, kept=kept)


@dataclass(frozen=True, slots=True)
class RuleBacktest:
    """A stored rule's backtest: what it would have done over the history, and what the
    history could not tell (``notes``)."""

    result: bt.BacktestResult
    events: int
    notes: list[str]


def backtest_rule(
    engine: Engine,
    rule: Rule,
    *,
    since: datetime | None = None,
    cameras: Collection[str] | None = None,
) -> RuleBacktest:
    """Backtests ``rule`` over the store's history (see
    :func:`sentinel.rules.suggestions.rule_filter` for how a rule becomes a filter).

    Args:
        engine: The store.
        rule: The rule.
        since: Only the history from then on; None: all of it.
        cameras: Only these cameras' history (a camera-limited reader's); None: every camera.
    """
    flt, notes = rule_filter(rule)
    history = history_frame(load_history(engine, since=since))
    if cameras is not None:
        history = history[history["camera_id"].isin(list(cameras))].reset_index(drop=True)
    [result] = bt.backtest(history, [flt])
    return RuleBacktest(result=result, events=len(history), notes=notes)
