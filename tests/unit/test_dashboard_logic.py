"""The dashboard's pure aggregation: windows, hourly series, system series from samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sentinel.dashboard.history import (
    AlertHour,
    Count,
    Window,
    WindowError,
    alert_series,
    bucket_time,
    counts_from_rows,
    event_series,
)
from sentinel.dashboard.samples import SampleRing, sample_of, system_series

NOW = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "end", "first", "hours"),
    [
        (None, None, NOW.replace(minute=0) - 24 * H, 25),  # last 24 h, both ends whole hours
        (NOW - 2 * H, NOW, NOW.replace(minute=0) - 2 * H, 3),
        (NOW.replace(minute=0) - 7 * 24 * H, NOW.replace(minute=0), None, 168),
    ],
)
def test_windows(
    start: datetime | None, end: datetime | None, first: datetime | None, hours: int
) -> None:
    w = Window.of(start, end, NOW)
    assert len(w.hours()) == hours
    if first is not None:
        assert w.start == first
    assert w.end.minute == 0 and w.end >= (end or NOW)


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (NOW, NOW - H, "before"),
        (NOW, NOW, "before"),
        (NOW - 8 * 24 * H, NOW, "at most"),
        (NOW - 7 * 24 * H, NOW, "at most"),  # 7 days plus the partial hour
        (NOW.replace(tzinfo=None), None, "time zone"),
        (None, datetime.min.replace(tzinfo=UTC) + H, "representable"),
        (datetime.max.replace(tzinfo=UTC) - H, datetime.max.replace(tzinfo=UTC), "representable"),
    ],
    ids=["reversed", "empty", "eight-days", "just-over", "naive", "year-one", "year-9999"],
)
def test_bad_windows(start: datetime | None, end: datetime | None, match: str) -> None:
    with pytest.raises(WindowError, match=match):
        Window.of(start, end, NOW)


def test_event_series_fills_every_hour_and_groups() -> None:
    w = Window.of(NOW - 3 * H, NOW, NOW)  # 13:00 .. 17:00, 4 hours
    rows = [
        {"bucket": "2026-12-07 13", "n": 2, "camera_id": "a", "label": "person"},
        {"bucket": "2026-12-07 13", "n": 1, "camera_id": "b", "label": "car"},
        {"bucket": "2026-12-07 16", "n": 4, "camera_id": "a", "label": "car"},
    ]
    s = event_series(w, counts_from_rows(rows))
    assert s["total"] == [3, 0, 0, 4]
    assert s["by_camera"] == {"a": [2, 0, 0, 4], "b": [1, 0, 0, 0]}
    assert s["by_label"] == {"car": [1, 0, 0, 4], "person": [2, 0, 0, 0]}
    assert {"camera_id": "a", "label": "car", "count": 4} in s["by_camera_label"]
    assert s["hours"][0] == "2026-12-07T13:00:00+00:00" and len(s["hours"]) == 4
    outside = event_series(w, [Count(NOW - 30 * H, 9, "a", "x")])
    assert outside["total"] == [0, 0, 0, 0]


def test_alert_series_rates() -> None:
    w = Window.of(NOW - H, NOW, NOW)  # 15:00 .. 17:00
    rows = [AlertHour(bucket_time("2026-12-07 15"), 6, true_positive=1, false_positive=3)]
    s = alert_series(w, rows)
    assert s["alerts"] == [6, 0] and s["false_positive"] == [3, 0]
    assert s["alerts_per_hour"] == 3.0 and s["false_positive_rate"] == 0.75
    assert alert_series(w, [])["false_positive_rate"] is None
    with pytest.raises(ValueError, match="YYYY"):
        bucket_time("yesterday")


def _status(frames: int, lat_total: float, lat_n: int, state: str = "running") -> dict[str, Any]:
    return {
        "state": state,
        "counters": {
            "frames_decoded": frames,
            "frames_dropped": frames // 10,
            "detector_calls": frames // 2,
        },
        "detector_latency_ms": {"total": lat_total, "count": lat_n},
        "batch_sizes": {"total": 2.0 * lat_n, "count": lat_n},
    }


def test_system_series_from_counter_samples() -> None:
    ring = SampleRing(capacity=3)
    agent = {
        "backlog": 2,
        "decisions": 10,
        "failures": 0,
        "latency_ms": {"total": 100, "count": 10},
    }
    for i, (frames, total, n) in enumerate(
        [(0, 0, 0), (100, 500, 10), (300, 1500, 20), (50, 60, 1)]
    ):
        statuses = {"a": _status(frames, total, n), "b": _status(frames, total, n)}
        ring.add(
            sample_of(NOW + i * timedelta(seconds=10), statuses, {**agent, "decisions": 10 + 6 * i})
        )
    assert len(ring.samples) == 3  # bounded
    s = system_series(list(ring.samples), {"a"})
    assert list(s["cameras"]) == ["a"]  # only the caller's cameras
    a = s["cameras"]["a"]
    assert a["fps_decoded"] == [20.0, 5.0]  # the last interval: restarted, counts from zero
    assert a["detector_latency_ms"] == [100.0, 60.0]
    assert a["batch_size"] == [2.0, 2.0]
    assert s["agent"]["decisions_per_min"] == [36.0, 36.0]
    assert s["agent"]["backlog"] == [2.0, 2.0]
    assert system_series([], None) == {"times": [], "cameras": {}, "agent": None}
    with pytest.raises(ValueError, match="capacity"):
        SampleRing(1)
