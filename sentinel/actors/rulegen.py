"""The RuleGen job on Ray Data: read the history from the database, mine it, backtest it.

The logic is Ray-free in :mod:`sentinel.rules.rulegen`; this module only wires its per-batch
steps into ``ray.data.read_sql(...).map_batches(...)`` and runs the once-only steps on the
driver. ``engine="pandas"`` runs the same steps on this process, for comparison and for
deployments without a cluster. The result is plain dataclasses: storing suggestions is the
suggestion repository's job, not this one's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import pandas as pd
import psycopg
import ray
import sqlalchemy as sa

from sentinel.rules import backtest as bt
from sentinel.rules.history import SHARD_COLUMN, Dialect, history_sql
from sentinel.rules.job import has_rule_id, run_job
from sentinel.rules.rulegen import (
    ALERT_COLUMNS,
    Candidate,
    MiningPartials,
    RuleGenSettings,
    Suggestion,
    candidates,
    combine_partials,
    mining_partials,
    plain_batch,
    prepare_batch,
    results,
)
from sentinel.store.db import make_engine

__all__ = ["DbConnect", "run_rulegen"]

Engine = Literal["ray", "pandas"]


@dataclass(frozen=True, slots=True)
class DbConnect:
    """A picklable DB-API connection factory for a store URL (what ``read_sql`` needs).

    Attributes:
        dialect: "postgresql" (psycopg) or "sqlite".
        params: psycopg's connection keywords, or ``{"database": path}`` for SQLite.
    """

    dialect: Dialect
    params: tuple[tuple[str, Any], ...]

    @classmethod
    def from_url(cls, url: str) -> DbConnect:
        """From a SQLAlchemy URL as the store takes it (``postgresql+psycopg://...``, with
        libpq query options such as ``options=-csearch_path=...``, or ``sqlite:///path``)."""
        parsed = sa.make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise ValueError(f"RuleGen needs a SQLite file, but got {url!r}")
            return cls("sqlite", (("database", parsed.database),))
        if backend != "postgresql":
            raise ValueError(f"RuleGen reads PostgreSQL or SQLite, but got {backend!r}")
        args: dict[str, Any] = parsed.translate_connect_args(username="user", database="dbname")
        args.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
        return cls("postgresql", tuple(sorted(args.items())))

    def __call__(self) -> Any:
        params = dict(self.params)
        if self.dialect == "sqlite":
            return sqlite3.connect(params["database"])
        return psycopg.connect(**params)


def run_rulegen(
    dsn: str,
    *,
    since: datetime | None = None,
    parallelism: int = 2,
    engine: Engine = "ray",
    settings: RuleGenSettings | None = None,
) -> list[Suggestion]:
    """Mines the event and verdict history for mask, rule and tightening suggestions, each
    with its backtest over the same history.

    With ``engine="ray"`` the history is read by ``ray.data.read_sql`` (split in
    ``parallelism`` shards on PostgreSQL; one read task on SQLite) and the per-batch steps run
    through ``map_batches``; Ray Data joins the running cluster, or starts a local one. With
    ``engine="pandas"`` the same steps run on this process; both give the same suggestions.

    Args:
        dsn: The store's SQLAlchemy URL (migrated database).
        since: Only the history from then on (tz-aware); None: all of it.
        parallelism: Read shards and blocks for Ray Data.
        engine: "ray" or "pandas".
        settings: Time zone, camera frame sizes and thresholds; defaults otherwise.
    """
    if parallelism < 1:
        raise ValueError(f"parallelism must be >= 1, but got {parallelism}")
    if engine not in ("ray", "pandas"):
        raise ValueError(f"engine must be 'ray' or 'pandas', but got {engine!r}")
    settings = settings or RuleGenSettings()
    store = make_engine(dsn)
    try:
        if engine == "pandas":
            return run_job(store, settings, since=since)
        with_rule_id = has_rule_id(store)
    finally:
        store.dispose()
    connect = DbConnect.from_url(dsn)
    sql, params = history_sql(connect.dialect, since=since, with_rule_id=with_rule_id)
    return _run_ray(connect, sql, params, settings, parallelism)


def _run_ray(
    connect: DbConnect,
    sql: str,
    params: tuple[Any, ...],
    settings: RuleGenSettings,
    parallelism: int,
) -> list[Suggestion]:
    sharded = connect.dialect == "postgresql" and parallelism > 1
    history = ray.data.read_sql(
        sql,
        connect,
        sql_params=params or None,
        # The query's shard column is already a non-negative-safe bigint hash of the event
        # id: ABS is the "hash" read_sql wraps it in (MOD(ABS(ABS(shard)), n)).
        shard_keys=[SHARD_COLUMN] if sharded else None,
        shard_hash_fn="ABS",
        override_num_blocks=parallelism if sharded else 1,
    )
    if not sharded and parallelism > 1:
        # SQLite is read by one task; spread the rows so the per-batch steps run in parallel.
        history = history.repartition(parallelism)
    prepared = history.map_batches(
        partial(prepare_batch, settings=settings), batch_format="pandas", batch_size=None
    ).materialize()
    partials = _mining(prepared, settings)
    found = candidates(partials, settings)
    counts = _backtest_counts(prepared, found)
    return results(found, counts, days=partials.days)


def _mining(prepared: ray.data.Dataset, settings: RuleGenSettings) -> MiningPartials:
    def run(step: str) -> pd.DataFrame:
        frame: pd.DataFrame = prepared.map_batches(
            partial(_partial, settings=settings, step=step), batch_format="pandas", batch_size=None
        ).to_pandas()
        return plain_batch(frame)

    span = run("span")
    return combine_partials(
        [
            MiningPartials(
                activity=run("activity"),
                cells=run("cells"),
                alerts=run("alerts"),
                first_s=float(span["first_s"].min()) if len(span) else float("nan"),
                last_s=float(span["last_s"].max()) if len(span) else float("nan"),
            )
        ]
    )


def _partial(batch: pd.DataFrame, settings: RuleGenSettings, step: str) -> pd.DataFrame:
    """One of the mining partials of a batch, as a frame Ray Data can carry."""
    part = mining_partials(batch, settings)
    if step == "span":
        return pd.DataFrame({"first_s": [part.first_s], "last_s": [part.last_s]})
    if step == "alerts":
        # Typed columns, so an empty batch does not turn the dataset's schema into nulls.
        return part.alerts.astype({"rule_id": object, "score": float, "verdict": object})[
            list(ALERT_COLUMNS)
        ]
    frame: pd.DataFrame = getattr(part, step)
    return frame


def _backtest_counts(prepared: ray.data.Dataset, found: list[Candidate]) -> pd.DataFrame:
    filters = [c.filter for c in found]
    if not filters:
        return bt.combine([])
    parts = prepared.map_batches(
        partial(_backtest_partial, filters=filters), batch_format="pandas", batch_size=None
    ).to_pandas()
    return bt.combine([plain_batch(parts)])


def _backtest_partial(batch: pd.DataFrame, filters: list[bt.Filter]) -> pd.DataFrame:
    return bt.backtest_partial(plain_batch(batch), filters)
