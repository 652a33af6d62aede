"""Backtest of one rule over a synthetic history: Ray Data (``map_batches`` over parquet files)
against single-process pandas on the same files, at several history sizes.

Both start from the same parquet folder on disk (written once per size, in 16 files) and end
with the same :class:`~sentinel.rules.backtest.BacktestResult` (checked). The pandas baseline
reads the folder with ``pd.read_parquet`` and runs the three backtest steps on one frame; the
Ray path reads it with ``ray.data.read_parquet``, runs ``backtest_partial`` per block and
combines on the driver. Ray's start-up is reported apart: a RuleGen job joins a running
cluster. Times are medians of ``ROUNDS`` interleaved rounds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import BenchmarkError, init_ray, median
from sentinel.rules import backtest as bt
from sentinel.rules.rulegen import plain_batch

SIZES = (100_000, 1_000_000, 3_000_000)
ROUNDS = 3
FILES = 16
CAMERAS = 20
T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 90

RULE = bt.RuleFilter(
    camera_ids=frozenset({"cam-00", "cam-01", "cam-02", "cam-03", "cam-04"}),
    labels=frozenset({"person"}),
    zones=frozenset({"gate"}),
    min_score=0.6,
    hours_of_week=bt.hours_of_week(22, 6),
    timezone="Europe/Paris",
    min_dwell_s=10.0,
)


def synthetic_history(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` events over 90 days on 20 cameras; 5 % judged true, 5 % false."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, DAYS * 86_400, rows)
    cameras = np.array([f"cam-{i:02d}" for i in range(CAMERAS)])
    labels = np.array(["person", "car", "bicycle"])
    verdicts = np.array([None, "true_positive", "false_positive"], dtype=object)
    return pd.DataFrame(
        {
            "camera_id": cameras[rng.integers(0, CAMERAS, rows)],
            "label": labels[rng.choice(3, rows, p=[0.6, 0.3, 0.1])],
            "score": rng.uniform(0.3, 1.0, rows).round(3),
            "started_at": pd.Timestamp(T0) + pd.to_timedelta(seconds, unit="s"),
            "box": "[0, 0, 10, 10]",
            "zone": np.array(["gate", "drive", "lawn", ""])[rng.integers(0, 4, rows)],
            "verdict": verdicts[rng.choice(3, rows, p=[0.9, 0.05, 0.05])],
            "dwell_s": rng.exponential(20.0, rows).round(1),
        }
    )


def _write(history: pd.DataFrame, folder: Path) -> None:
    for i, part in enumerate(np.array_split(np.arange(len(history)), FILES)):
        history.iloc[part].to_parquet(folder / f"part-{i:02d}.parquet", index=False)


def _pandas(folder: Path) -> bt.BacktestResult:
    return bt.backtest(pd.read_parquet(folder), [RULE])[0]


def _partial(batch: pd.DataFrame) -> pd.DataFrame:
    return bt.backtest_partial(plain_batch(batch), [RULE])


def _ray(folder: Path) -> bt.BacktestResult:
    import ray

    parts = (
        ray.data.read_parquet(str(folder))
        # partial: map_batches' stubs want a callable of any batch type.
        .map_batches(partial(_partial), batch_format="pandas", batch_size=None)
        .to_pandas()
    )
    return bt.finish(bt.combine([plain_batch(parts)]), [RULE])[0]


def run(model_path: Path | None = None) -> None:
    """Prints both times and their ratio per size; ``model_path`` is unused."""
    del model_path
    import ray

    start = time.monotonic()
    init_ray("sentinel-bench-rules-backtest")
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"rules_backtest: ray.init {time.monotonic() - start:.1f} s (not counted below)")
    crossover = None
    try:
        for rows in SIZES:
            with tempfile.TemporaryDirectory(prefix="sentinel-bench-rules-") as tmp:
                folder = Path(tmp)
                _write(synthetic_history(rows), folder)
                times: dict[str, list[float]] = {"pandas": [], "ray": []}
                results: dict[str, bt.BacktestResult] = {}
                _ray(folder)  # warm the workers and imports once per size
                for rnd in range(ROUNDS):
                    for name in ("pandas", "ray") if rnd % 2 == 0 else ("ray", "pandas"):
                        began = time.perf_counter()
                        results[name] = _pandas(folder) if name == "pandas" else _ray(folder)
                        times[name].append(time.perf_counter() - began)
                if results["pandas"] != results["ray"]:
                    raise BenchmarkError(f"results differ: {results}")
                pandas_s, ray_s = median(times["pandas"]), median(times["ray"])
                ratio = ray_s / pandas_s
                if ratio < 1.0 and crossover is None:
                    crossover = rows
                alerts = results["ray"]
                print(
                    f"rules_backtest: {rows:>9,} events: pandas {pandas_s:.2f} s, "
                    f"Ray Data {ray_s:.2f} s, ratio ray/pandas {ratio:.2f} "
                    f"({alerts.alerts} alerts, {alerts.per_day:.1f}/day, precision "
                    f"{alerts.precision:.2f}, identical results)",
                    flush=True,
                )
    finally:
        ray.shutdown()
    if crossover is None:
        print(
            f"rules_backtest: Ray Data did not beat single-process pandas up to "
            f"{SIZES[-1]:,} events on this machine (2 cores)"
        )
    else:
        print(f"rules_backtest: Ray Data starts to win from about {crossover:,} events here")


if __name__ == "__main__":
    run()
    sys.exit(0)
