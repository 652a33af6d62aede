"""Response models as pandas DataFrames, for notebooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    import pandas as pd

# Columns that hold nested lists of models: summarised as a count instead.
_NESTED = {"key_frames": "n_key_frames", "members": "n_members", "member_ids": "n_events"}
_TIMES = (
    "started_at",
    "ended_at",
    "last_seen_at",
    "best_at",
    "created_at",
    "updated_at",
    "acknowledged_at",
)


def to_pandas(items: Sequence[BaseModel]) -> pd.DataFrame:
    """One row per item (events, incidents, alerts, search hits), one column per field.

    Times become timezone-aware (UTC) datetimes; nested lists of models (an incident's key
    frames, members) become counts; when the rows have ``started_at`` and ``last_seen_at``,
    ``duration_s`` is added (to ``ended_at``, or ``last_seen_at`` while open). An empty list
    gives an empty frame.
    """
    import pandas as pd

    rows = [item.model_dump(mode="python") for item in items]
    for row in rows:
        for name, count in _NESTED.items():
            if name in row and isinstance(row[name], list):
                row[count] = len(row.pop(name))
        if isinstance(row.get("alert"), dict):
            row["alert_id"] = row.pop("alert")["id"]
    frame = pd.DataFrame.from_records(rows)
    for name in _TIMES:
        if name in frame.columns:
            frame[name] = pd.to_datetime(frame[name], utc=True)
    if {"started_at", "last_seen_at"} <= set(frame.columns):
        end = frame["last_seen_at"]
        if "ended_at" in frame.columns:
            end = frame["ended_at"].fillna(end)
        frame["duration_s"] = (end - frame["started_at"]).dt.total_seconds()
    return frame
