"""When RuleGen runs next: a pure function of the last run, the clock and the interval."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["AUDIT_ACTION", "AUDIT_ACTOR", "next_run"]

# How a scheduled run is written in the audit log (the schedule counts from the last one).
AUDIT_ACTOR = "rulegen"
AUDIT_ACTION = "rulegen.run"


def next_run(
    last_run: datetime | None,
    now: datetime,
    interval_s: float,
    *,
    first_at: datetime | None = None,
) -> datetime:
    """The time of the next scheduled run.

    One interval after the last run; at ``first_at`` when there was none (a fresh store: no
    history worth mining yet, and a platform that is still starting its cameras), or at once
    without it; at once too when the due time has passed already (the platform was down):
    missed runs are not caught up one by one, since each run reads the whole history window.

    Args:
        last_run: When the last run started (tz-aware), or None.
        now: The current time (tz-aware).
        interval_s: Seconds between runs (> 0).
        first_at: When the first run is due if there was none (tz-aware); None: now.

    Raises:
        ValueError: If ``interval_s`` is not positive or a time is naive.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, but got {interval_s}")
    for name, value in (("now", now), ("last_run", last_run), ("first_at", first_at)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(f"{name} must be tz-aware, but got {value.isoformat()}")
    if last_run is None:
        return now if first_at is None else max(first_at, now)
    due = last_run + timedelta(seconds=interval_s)
    return max(due, now)
