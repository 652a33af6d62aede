"""The event and verdict history RuleGen reads: the SQL that selects it, and its rows as a frame.

One row per event (``events``), with the verdict of the alert raised about it (``alerts``,
joined on ``alerts.event_id``; an incident's alert is joined to the member event that raised
it, so its verdict counts once). The columns are :data:`sentinel.rules.mining.EVENT_COLUMNS`
plus :data:`EXTRA_COLUMNS`.

Zones: ``zones`` is every zone the object was in (``events.zones``), and ``zone`` the first of
them, the one the activity profiles and rule suggestions count it in (None: no zone, also for
events stored before zones were recorded, "" after :func:`sentinel.rules.mining.prepare`).

Not stored yet, so the loader says so rather than guessing:
- ``rule_id``: the operator's rule that raised the alert exists only once the alerts table has
  a ``rule_id`` column (``with_rule_id=True``); before that it is None and no tightening can be
  suggested.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from sentinel.rules.mining import EVENT_COLUMNS

__all__ = ["EXTRA_COLUMNS", "HISTORY_COLUMNS", "Dialect", "history_frame", "history_sql"]

Dialect = Literal["postgresql", "sqlite"]
EXTRA_COLUMNS = ("event_id", "dwell_s", "alerted", "rule_id", "started_s", "zones")
HISTORY_COLUMNS = (*EVENT_COLUMNS, *EXTRA_COLUMNS)
SHARD_COLUMN = "shard"
_EPOCH = pd.Timestamp(0, tz="UTC")


def history_sql(
    dialect: Dialect, *, since: datetime | None = None, with_rule_id: bool = False
) -> tuple[str, tuple[Any, ...]]:
    """The query of the history and its parameters (the driver's own placeholder style).

    On PostgreSQL the rows also carry ``shard`` (a bigint hash of the event id), so Ray Data's
    ``read_sql`` can split the read with ``shard_keys=["shard"]``.

    Args:
        dialect: "postgresql" (psycopg, ``%s``) or "sqlite" (``?``).
        since: Only events that started at or after it (tz-aware); None: all.
        with_rule_id: Whether ``alerts.rule_id`` exists (see the module docstring).
    """
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError(f"dialect must be 'postgresql' or 'sqlite', but got {dialect!r}")
    rule = "a.rule_id" if with_rule_id else "CAST(NULL AS VARCHAR(36))"
    shard = f",\n       CAST(hashtext(e.id) AS BIGINT) AS {SHARD_COLUMN}"
    sql = (
        "SELECT e.id AS event_id, e.camera_id, e.label, e.score, e.started_at, "
        "e.last_seen_at, e.box,\n"
        "       e.zones, a.verdict, a.alert AS alerted, "
        f"{rule} AS rule_id"
        f"{shard if dialect == 'postgresql' else ''}\n"
        "FROM events AS e LEFT JOIN alerts AS a ON a.event_id = e.id"
    )
    if since is None:
        return sql, ()
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError(f"since must be tz-aware, but got {since.isoformat()}")
    if dialect == "postgresql":
        return f"{sql}\nWHERE e.started_at >= %s", (since,)
    # The store keeps SQLite datetimes as UTC wall-time text (UTCDateTime): compare as such.
    text = since.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{sql}\nWHERE e.started_at >= ?", (text,)


def history_frame(
    raw: pd.DataFrame | Sequence[Sequence[Any]], columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Rows of :func:`history_sql` as the history frame (:data:`HISTORY_COLUMNS`).

    Args:
        raw: A frame with the query's columns (a Ray Data batch), or the rows a cursor fetched.
        columns: The rows' column names (``cursor.description``), when ``raw`` is rows.

    Datetimes become tz-aware UTC (SQLite's naive text is UTC), ``dwell_s`` is how long the
    object stayed (last seen minus start, seconds), ``started_s`` the start in epoch seconds,
    and ``alerted`` whether an alert was raised (False when none was recorded).
    """
    frame = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(list(raw), columns=list(columns))
    started = pd.to_datetime(frame["started_at"], utc=True, format="mixed")
    zones = frame["zones"].astype(object).map(_zone_list)
    last_seen = pd.to_datetime(frame["last_seen_at"], utc=True, format="mixed")
    out = pd.DataFrame(
        {
            "camera_id": frame["camera_id"].astype(str),
            "label": frame["label"].astype(str),
            "score": frame["score"].astype(float),
            "started_at": started,
            "box": frame["box"].astype(object),
            "zone": _objects(zones.map(lambda zs: zs[0] if zs else None)),
            "verdict": _objects(frame["verdict"]),
            "event_id": frame["event_id"].astype(str),
            "dwell_s": (last_seen - started).dt.total_seconds(),
            "alerted": frame["alerted"].astype(object).map(_flag).astype(bool),
            "rule_id": _objects(frame["rule_id"]),
            "started_s": (started - _EPOCH).dt.total_seconds(),
            "zones": zones,
        },
        index=frame.index,
    )
    return out.reset_index(drop=True)


def _objects(column: pd.Series) -> pd.Series:
    """Python objects with None for SQL NULL (pandas/arrow may bring NaN or <NA>)."""
    values = column.astype(object)
    return values.where(values.notna(), None)


def _zone_list(value: object) -> tuple[str, ...]:
    """``events.zones`` (JSON text; NULL for events stored before zones were) as a tuple."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    parsed = json.loads(str(value))
    return tuple(str(z) for z in parsed) if isinstance(parsed, list) else ()


def _flag(value: object) -> bool:
    return bool(value) if value is not None and not pd.isna(value) else False  # type: ignore[call-overload]
