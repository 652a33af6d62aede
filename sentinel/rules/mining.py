"""RuleGen's mining: what the history of events and verdicts says about a site, Ray-free.

Every function works on pandas frames and is associative where it aggregates, so the same code
runs on one process over a whole history and, through Ray Data, batch by batch on a cluster
(``map_batches`` the per-batch steps, then sum the partial counts). The history frame has one
row per event (see :data:`EVENT_COLUMNS`); verdicts are the operators' ("true_positive",
"false_positive" or None) on the event's alert.

What it finds:
- **activity profiles**: events per camera x zone x label x hour of the week (local time);
- **mask suggestions**: grid cells of a camera where operators keep marking false positives,
  merged into rectangles an object mask can cover, each with what it would cost (true
  positives lost) and save (false positives and the share of the camera's detections dropped);
- **rule suggestions**: hours in which a label is rare in a zone (a run of quiet hours), the
  classic "person at the gate after 22:00" rule, with how often it would have fired;
- **tightening suggestions**: a rule whose alerts operators mostly reject, with the minimum
  score that keeps most true positives and drops most false ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sentinel.domain.scene import Point

EVENT_COLUMNS = ("camera_id", "label", "score", "started_at", "box", "zone", "verdict")
HOURS_PER_WEEK = 7 * 24
FALSE_POSITIVE = "false_positive"
TRUE_POSITIVE = "true_positive"


@dataclass(frozen=True, slots=True)
class MaskSuggestion:
    """An object mask over a region where detections were mostly false positives.

    Attributes:
        camera_id: The camera.
        label: The label the false positives had.
        polygon: The region, normalised, as a rectangle's four corners.
        false_positives: Verdicted false positives the mask would have removed.
        true_positives_lost: Verdicted true positives inside it.
        detections_share: Share of the camera's events inside it (the detector work, and the
            tracking and alerting, the mask saves).
    """

    camera_id: str
    label: str
    polygon: tuple[Point, ...]
    false_positives: int
    true_positives_lost: int
    detections_share: float


@dataclass(frozen=True, slots=True)
class RuleSuggestion:
    """A rule on a rare combination: ``label`` in ``zone`` during ``hours`` (local, wrapping)."""

    camera_id: str
    zone: str
    label: str
    start_hour: int
    end_hour: int  # exclusive; below start_hour when the range wraps past midnight
    events_per_week: float  # how often it would have fired over the history
    reason: str


@dataclass(frozen=True, slots=True)
class TighteningSuggestion:
    """A noisy rule: raise its minimum score to ``min_score``."""

    rule_id: str
    alerts: int
    false_positives: int
    min_score: float
    false_positives_removed: int
    true_positives_lost: int


def prepare(
    batch: pd.DataFrame, *, tz: str, frame_sizes: Mapping[str, tuple[int, int]]
) -> pd.DataFrame:
    """Adds the columns mining groups by: ``hour_of_week`` (0 = Monday 00:00, local time),
    ``hour`` (0-23 local) and the box's bottom centre normalised by the camera's frame size
    (``bx``, ``by``; NaN when the camera's size is unknown). ``zone`` "" is "no zone".

    Args:
        batch: Rows with :data:`EVENT_COLUMNS`; ``box`` is ``[x1, y1, x2, y2]`` in pixels, as
            a list or its JSON text; ``started_at`` tz-aware.
        tz: The site's IANA time zone.
        frame_sizes: ``camera_id -> (width, height)`` in pixels.
    """
    out = batch.copy()
    local = pd.to_datetime(out["started_at"], utc=True).dt.tz_convert(tz)
    out["hour"] = local.dt.hour.astype("int64")
    out["hour_of_week"] = (local.dt.dayofweek * 24 + local.dt.hour).astype("int64")
    boxes = np.array([_box(b) for b in out["box"]], dtype=float).reshape(-1, 4)
    sizes = np.array(
        [frame_sizes.get(c, (np.nan, np.nan)) for c in out["camera_id"]], dtype=float
    ).reshape(-1, 2)
    out["bx"] = (boxes[:, 0] + boxes[:, 2]) / 2.0 / sizes[:, 0]
    out["by"] = boxes[:, 3] / sizes[:, 1]
    out["zone"] = out["zone"].fillna("").astype(str)
    return out


def _box(value: object) -> list[float]:
    box = json.loads(value) if isinstance(value, str) else value
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"box must be [x1, y1, x2, y2], but got {value!r}")
    return [float(v) for v in box]


# -- activity -----------------------------------------------------------------------------


def activity_counts(prepared: pd.DataFrame) -> pd.DataFrame:
    """Partial counts of one batch: ``camera_id, zone, label, hour_of_week, count``.
    Partial counts of several batches combine with :func:`combine_counts`."""
    keys = ["camera_id", "zone", "label", "hour_of_week"]
    return prepared.groupby(keys, as_index=False).size().rename(columns={"size": "count"})


def combine_counts(parts: Iterable[pd.DataFrame], keys: Sequence[str]) -> pd.DataFrame:
    """Sums partial count frames (every column but ``keys`` is summed)."""
    frames = [p for p in parts if len(p)]
    if not frames:
        return pd.DataFrame(columns=[*keys, "count"])
    return pd.concat(frames).groupby(list(keys), as_index=False).sum()


def activity_profile(counts: pd.DataFrame, *, weeks: float) -> pd.DataFrame:
    """Events per week for every camera x zone x label x hour of the week.

    Args:
        counts: Combined :func:`activity_counts`.
        weeks: How many weeks the history covers (positive).
    """
    if weeks <= 0:
        raise ValueError(f"weeks must be positive, but got {weeks}")
    out = counts.copy()
    out["per_week"] = out["count"] / weeks
    return out


# -- masks --------------------------------------------------------------------------------


def verdict_cells(prepared: pd.DataFrame, *, grid: int) -> pd.DataFrame:
    """Partial counts per camera x label x grid cell of the bottom centre: ``events``,
    ``false_positives``, ``true_positives`` (combine with :func:`combine_counts`)."""
    known = prepared.dropna(subset=["bx", "by"])
    col = np.clip((known["bx"] * grid).astype(int), 0, grid - 1)
    row = np.clip((known["by"] * grid).astype(int), 0, grid - 1)
    frame = pd.DataFrame(
        {
            "camera_id": known["camera_id"],
            "label": known["label"],
            "row": row,
            "col": col,
            "events": 1,
            "false_positives": (known["verdict"] == FALSE_POSITIVE).astype(int),
            "true_positives": (known["verdict"] == TRUE_POSITIVE).astype(int),
        }
    )
    return frame.groupby(["camera_id", "label", "row", "col"], as_index=False).sum()


def mask_suggestions(
    cells: pd.DataFrame,
    *,
    grid: int,
    min_false_positives: int = 5,
    min_false_share: float = 0.8,
) -> list[MaskSuggestion]:
    """Regions to mask: connected cells (4-neighbours) of one camera and label where at least
    ``min_false_positives`` verdicts were false and false ones are at least
    ``min_false_share`` of the verdicts, each merged into its bounding rectangle.

    Args:
        cells: Combined :func:`verdict_cells`.
        grid: The grid they were counted on.
        min_false_positives: False positives a cell needs.
        min_false_share: Share of false among the cell's verdicts it needs.
    """
    if cells.empty:
        return []
    totals = cells.groupby("camera_id")["events"].sum()
    judged = cells["false_positives"] + cells["true_positives"]
    hot = cells[
        (cells["false_positives"] >= min_false_positives)
        & (cells["false_positives"] >= min_false_share * judged)
    ]
    out: list[MaskSuggestion] = []
    for (camera, label), group in hot.groupby(["camera_id", "label"], sort=True):
        for component in _components(
            {(int(r), int(c)) for r, c in zip(group["row"], group["col"], strict=True)}
        ):
            rows = [r for r, _ in component]
            cols = [c for _, c in component]
            r0, r1, c0, c1 = min(rows), max(rows) + 1, min(cols), max(cols) + 1
            inside = cells[
                (cells["camera_id"] == camera)
                & (cells["label"] == label)
                & cells["row"].between(r0, r1 - 1)
                & cells["col"].between(c0, c1 - 1)
            ]
            all_labels = cells[
                (cells["camera_id"] == camera)
                & cells["row"].between(r0, r1 - 1)
                & cells["col"].between(c0, c1 - 1)
            ]
            x0, x1, y0, y1 = c0 / grid, c1 / grid, r0 / grid, r1 / grid
            out.append(
                MaskSuggestion(
                    camera_id=str(camera),
                    label=str(label),
                    polygon=((x0, y0), (x1, y0), (x1, y1), (x0, y1)),
                    false_positives=int(inside["false_positives"].sum()),
                    true_positives_lost=int(inside["true_positives"].sum()),
                    detections_share=float(
                        all_labels["events"].sum() / float(totals.loc[str(camera)])
                    ),
                )
            )
    return out


def _components(cells: set[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Connected components (4-neighbours), each sorted, in sorted order of their first cell."""
    left, out = set(cells), []
    for start in sorted(cells):
        if start not in left:
            continue
        left.discard(start)
        stack, component = [start], []
        while stack:
            r, c = stack.pop()
            component.append((r, c))
            for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if n in left:
                    left.discard(n)
                    stack.append(n)
        out.append(sorted(component))
    return out


# -- rules on rare combinations -----------------------------------------------------------


def rule_suggestions(
    profile: pd.DataFrame,
    *,
    max_per_week: float = 0.5,
    min_quiet_hours: int = 4,
    min_busy_per_week: float = 7.0,
) -> list[RuleSuggestion]:
    """Quiet hours of a label in a zone, where a sighting is worth an alert.

    For each camera x zone x label seen at least ``min_busy_per_week`` times a week in all,
    the hours of the day (local, over all weekdays) with at most ``max_per_week`` events a week
    are quiet; each run of at least ``min_quiet_hours`` consecutive quiet hours (wrapping past
    midnight) becomes one suggestion. A label never seen on a camera is not suggested: the
    history cannot tell whether it matters there.
    """
    out: list[RuleSuggestion] = []
    if profile.empty:
        return out
    by_hour = profile.assign(hour=profile["hour_of_week"] % 24)
    for (camera, zone, label), group in by_hour.groupby(["camera_id", "zone", "label"], sort=True):
        total = float(group["per_week"].sum())
        if total < min_busy_per_week:
            continue
        rates = np.zeros(24)
        for hour, rate in group.groupby("hour")["per_week"].sum().items():
            rates[int(str(hour))] = float(rate)
        for start, end in _quiet_runs(rates <= max_per_week, min_quiet_hours):
            hours = [(start + i) % 24 for i in range((end - start) % 24 or 24)]
            fired = float(rates[hours].sum())
            where = f"zone '{zone}'" if zone else "the whole view"
            out.append(
                RuleSuggestion(
                    camera_id=str(camera),
                    zone=str(zone),
                    label=str(label),
                    start_hour=start,
                    end_hour=end,
                    events_per_week=fired,
                    reason=(
                        f"{label} in {where}: {total:.1f} events a week, but "
                        f"{fired:.2f} a week between {start:02d}:00 and {end:02d}:00"
                    ),
                )
            )
    return out


def _quiet_runs(quiet: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Maximal runs of True hours on the 24-hour circle, as ``(start, end exclusive)``."""
    if quiet.all() or not quiet.any():
        return []  # always quiet (nothing to contrast) or never quiet
    first_loud = int(np.argmin(quiet))
    runs, start = [], None
    for i in range(1, 25):
        hour = (first_loud + i) % 24
        if quiet[hour] and start is None:
            start = hour
        elif not quiet[hour] and start is not None:
            if (hour - start) % 24 >= min_len:
                runs.append((start, hour))
            start = None
    return runs


# -- noisy rules --------------------------------------------------------------------------


def tightening_suggestions(
    alerts: pd.DataFrame, *, min_alerts: int = 10, min_false_share: float = 0.5
) -> list[TighteningSuggestion]:
    """Rules whose judged alerts are mostly false, with the score threshold that helps most.

    Args:
        alerts: One row per alert a rule raised: ``rule_id``, ``score``, ``verdict``.
        min_alerts: Judged alerts a rule needs before it is called noisy.
        min_false_share: Share of false positives among them that makes it noisy.

    The threshold (0.01 above a judged alert score) maximises false positives removed minus
    true positives lost (ties: the lower threshold); no suggestion when none removes more
    false positives than it loses true ones.
    """
    out: list[TighteningSuggestion] = []
    judged = alerts[alerts["verdict"].isin((FALSE_POSITIVE, TRUE_POSITIVE))]
    for rule_id, group in judged.groupby("rule_id", sort=True):
        false = group["verdict"] == FALSE_POSITIVE
        if len(group) < min_alerts or false.mean() < min_false_share:
            continue
        best: tuple[int, float, int, int] | None = None
        scores = group["score"].round(2)
        # Just above each judged score: the lowest threshold that removes the alerts below.
        for threshold in sorted({round(float(s) + 0.01, 2) for s in scores}):
            below = scores < threshold
            removed, lost = int((below & false).sum()), int((below & ~false).sum())
            gain = removed - lost
            if gain > 0 and (best is None or gain > best[0]):
                best = (gain, float(threshold), removed, lost)
        if best is not None:
            out.append(
                TighteningSuggestion(
                    rule_id=str(rule_id),
                    alerts=len(group),
                    false_positives=int(false.sum()),
                    min_score=best[1],
                    false_positives_removed=best[2],
                    true_positives_lost=best[3],
                )
            )
    return out
