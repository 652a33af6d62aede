"""The history query's text and its rows as a frame (both drivers' shapes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from sentinel.rules.history import HISTORY_COLUMNS, history_frame, history_sql

RAW_COLUMNS = [
    "event_id",
    "camera_id",
    "label",
    "score",
    "started_at",
    "last_seen_at",
    "box",
    "zones",
    "verdict",
    "alerted",
    "rule_id",
]


def test_postgres_query_has_a_shard_column_and_a_placeholder() -> None:
    since = datetime(2024, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    sql, params = history_sql("postgresql", since=since)
    assert "CAST(hashtext(e.id) AS BIGINT) AS shard" in sql
    assert "LEFT JOIN alerts AS a ON a.event_id = e.id" in sql
    assert sql.endswith("WHERE e.started_at >= %s")
    assert params == (since,)
    assert "CAST(NULL AS VARCHAR(36)) AS rule_id" in sql
    assert "e.zones," in sql


def test_sqlite_query_compares_utc_text() -> None:
    since = datetime(2024, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    sql, params = history_sql("sqlite", since=since, with_rule_id=True)
    assert "hashtext" not in sql
    assert "a.rule_id AS rule_id" in sql
    assert sql.endswith("WHERE e.started_at >= ?")
    assert params == ("2024-05-01 00:00:00.000000",)
    assert history_sql("sqlite", with_rule_id=True) == (sql.rsplit("\nWHERE", 1)[0], ())


@pytest.mark.parametrize(
    ("dialect", "since", "message"),
    [
        ("mysql", None, "dialect"),
        ("sqlite", datetime(2024, 5, 1), "tz-aware"),
    ],
)
def test_history_sql_refuses(dialect: str, since: datetime | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        history_sql(dialect, since=since)  # type: ignore[arg-type]


def test_rows_from_sqlite_become_the_history_frame() -> None:
    rows = [
        ("e1", "gate", "person", 0.9, "2024-05-01 12:00:00.000000",
         "2024-05-01 12:00:30.500000", "[1, 2, 3, 4]", '["door", "path"]', "false_positive", 1,
         None),
        ("e2", "gate", "car", 0.5, "2024-05-01 13:00:00.000000",
         "2024-05-01 13:00:00.000000", "[1, 2, 3, 4]", None, None, None, None),
    ]  # fmt: skip
    frame = history_frame(rows, RAW_COLUMNS)
    assert tuple(frame.columns) == HISTORY_COLUMNS
    assert frame["started_at"].tolist() == [
        pd.Timestamp("2024-05-01 12:00", tz="UTC"),
        pd.Timestamp("2024-05-01 13:00", tz="UTC"),
    ]
    assert frame["dwell_s"].tolist() == [30.5, 0.0]
    assert frame["alerted"].tolist() == [True, False]
    # The first zone it was in counts for the profiles; a backtest sees them all. NULL (an event
    # stored before zones were recorded) is no zone.
    assert frame["zone"].tolist() == ["door", None]
    assert frame["zones"].tolist() == [("door", "path"), ()]
    assert frame["verdict"].tolist() == ["false_positive", None]
    assert frame["rule_id"].tolist() == [None, None]
    assert frame["started_s"].iloc[0] == datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()


def test_a_frame_from_postgres_keeps_its_zones() -> None:
    start = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    raw = pd.DataFrame(
        [["e1", "gate", "person", 0.9, start, start + timedelta(seconds=4), "[1, 2, 3, 4]",
          None, None, False, "r1", 123]],
        columns=[*RAW_COLUMNS, "shard"],
    )  # fmt: skip
    frame = history_frame(raw)
    assert frame["started_at"].iloc[0] == pd.Timestamp("2024-05-01 12:00", tz="UTC")
    assert frame["dwell_s"].iloc[0] == 4.0
    assert frame["rule_id"].iloc[0] == "r1"
    assert not frame["alerted"].iloc[0]
    assert "shard" not in frame.columns
