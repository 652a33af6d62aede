"""Hourly series over a bounded window: windows, buckets, and the series built from counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_WINDOW = timedelta(days=7)
HOUR = timedelta(hours=1)


class WindowError(ValueError):
    """A window the dashboard does not answer (reversed, naive, too long)."""


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)`` in whole UTC hours: start rounded down, end rounded up."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, start: datetime | None, end: datetime | None, now: datetime) -> Window:
        """The window asked for; by default the 24 hours up to ``now``.

        Raises:
            WindowError: If a bound is naive, ``start`` is not before ``end``, or the window
                spans more than seven days.
        """
        for name, value in (("start", start), ("end", end)):
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise WindowError(f"{name} must carry a time zone, got {value.isoformat()}")
        try:
            stop = (end or now).astimezone(UTC)
            begin = start.astimezone(UTC) if start is not None else stop - timedelta(hours=24)
            if begin >= stop:
                raise WindowError(
                    f"start ({begin.isoformat()}) must be before end ({stop.isoformat()})"
                )
            first = begin.replace(minute=0, second=0, microsecond=0)
            last = stop.replace(minute=0, second=0, microsecond=0)
            if last < stop:
                last += HOUR
            if last - first > MAX_WINDOW:
                raise WindowError(f"the window spans {last - first}; at most {MAX_WINDOW} (7 days)")
        except OverflowError as exc:
            raise WindowError("the window is outside the representable dates") from exc
        return cls(first, last)

    def hours(self) -> list[datetime]:
        """The start of every hour in the window, in order."""
        n = int((self.end - self.start) / HOUR)
        return [self.start + i * HOUR for i in range(n)]


def bucket_time(key: str) -> datetime:
    """The hour of a bucket key as the SQL writes it: ``YYYY-MM-DD HH`` (UTC)."""
    try:
        return datetime.strptime(key[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"bucket key must look like 'YYYY-MM-DD HH', got {key!r}") from exc


@dataclass(frozen=True, slots=True)
class Count:
    """One group's count in one hour (``hour`` as a bucket key or a datetime)."""

    hour: datetime
    count: int
    camera_id: str = ""
    label: str = ""


def event_series(window: Window, counts: Iterable[Count]) -> dict[str, Any]:
    """Events per hour: in total, per camera and per label, every hour of the window present
    (zeros included) so a chart needs no gap filling."""
    hours = window.hours()
    index = {h: i for i, h in enumerate(hours)}
    total = [0] * len(hours)
    cameras: dict[str, list[int]] = {}
    labels: dict[str, list[int]] = {}
    by_pair: dict[tuple[str, str], int] = {}
    for c in counts:
        i = index.get(c.hour)
        if i is None:
            continue  # outside the window (the SQL's bounds are the window's: never, in fact)
        total[i] += c.count
        cameras.setdefault(c.camera_id, [0] * len(hours))[i] += c.count
        labels.setdefault(c.label, [0] * len(hours))[i] += c.count
        by_pair[(c.camera_id, c.label)] = by_pair.get((c.camera_id, c.label), 0) + c.count
    return {
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "hours": [h.isoformat() for h in hours],
        "total": total,
        "by_camera": dict(sorted(cameras.items())),
        "by_label": dict(sorted(labels.items())),
        "by_camera_label": [
            {"camera_id": cam, "label": label, "count": n}
            for (cam, label), n in sorted(by_pair.items())
        ],
    }


@dataclass(frozen=True, slots=True)
class AlertHour:
    """One hour's alerts: how many, and the operators' verdicts of them so far."""

    hour: datetime
    alerts: int
    true_positive: int = 0
    false_positive: int = 0
    acknowledged: int = 0


def alert_series(window: Window, rows: Iterable[AlertHour]) -> dict[str, Any]:
    """Alerts per hour with their verdicts, and the window's totals: the mean rate per hour
    and the share of judged alerts that were false positives (None when none was judged)."""
    hours = window.hours()
    index = {h: i for i, h in enumerate(hours)}
    series: dict[str, list[int]] = {
        k: [0] * len(hours) for k in ("alerts", "true_positive", "false_positive", "acknowledged")
    }
    for r in rows:
        i = index.get(r.hour)
        if i is None:
            continue
        series["alerts"][i] += r.alerts
        series["true_positive"][i] += r.true_positive
        series["false_positive"][i] += r.false_positive
        series["acknowledged"][i] += r.acknowledged
    totals = {k: sum(v) for k, v in series.items()}
    judged = totals["true_positive"] + totals["false_positive"]
    return {
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "hours": [h.isoformat() for h in hours],
        **series,
        "totals": totals,
        "alerts_per_hour": round(totals["alerts"] / len(hours), 4) if hours else 0.0,
        "false_positive_rate": (round(totals["false_positive"] / judged, 4) if judged else None),
    }


def counts_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Count]:
    """:class:`Count` objects from SQL rows (``bucket``, ``n``, optional camera and label)."""
    return [
        Count(
            hour=bucket_time(str(r["bucket"])),
            count=int(r["n"]),
            camera_id=str(r.get("camera_id") or ""),
            label=str(r.get("label") or ""),
        )
        for r in rows
    ]
