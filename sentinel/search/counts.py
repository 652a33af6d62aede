"""Structured counts for questions like "how many people did the demo camera see in the last
ten minutes": the question is read into a :class:`CountQuery` by rules (never by the LLM), and
the count is computed by SQL over the events or incidents the caller may see.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sentinel.store.incident_tables import INCIDENT_MEMBERS, INCIDENTS
from sentinel.store.sql import as_utc
from sentinel.store.tables import EVENTS

__all__ = [
    "CountQuery",
    "CountResult",
    "count_items",
    "local_time",
    "parse_count_question",
]

_INTENT = re.compile(r"\b(how many|number of|count)\b", re.I)
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "forty-five": 45,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
}
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_WINDOW = re.compile(
    r"\b(?:last|past|previous)\s+(?:(\d{1,5}|"
    + "|".join(sorted(_NUMBERS, key=len, reverse=True))
    + r")\s+)?(second|minute|hour|day|week)s?\b",
    re.I,
)
_LABELS: dict[str, tuple[str, ...]] = {
    "person": ("person",),
    "persons": ("person",),
    "people": ("person",),
    "pedestrian": ("person",),
    "pedestrians": ("person",),
    "man": ("person",),
    "men": ("person",),
    "woman": ("person",),
    "women": ("person",),
    "visitor": ("person",),
    "visitors": ("person",),
    "car": ("car",),
    "cars": ("car",),
    "truck": ("truck",),
    "trucks": ("truck",),
    "lorry": ("truck",),
    "lorries": ("truck",),
    "bus": ("bus",),
    "buses": ("bus",),
    "bicycle": ("bicycle",),
    "bicycles": ("bicycle",),
    "bike": ("bicycle",),
    "bikes": ("bicycle",),
    "motorcycle": ("motorcycle",),
    "motorcycles": ("motorcycle",),
    "dog": ("dog",),
    "dogs": ("dog",),
    "cat": ("cat",),
    "cats": ("cat",),
    "vehicle": ("car", "truck", "bus", "motorcycle"),
    "vehicles": ("car", "truck", "bus", "motorcycle"),
}
MAX_SAMPLES = 10


@dataclass(frozen=True, slots=True)
class CountQuery:
    """What a counting question asks: what to count, of which labels, on which cameras, in
    which window (None: no bound)."""

    kind: Literal["event", "incident"] = "event"
    labels: tuple[str, ...] = ()
    camera_ids: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    window: str = ""  # the window in words ("in the last 10 minutes"), for the answer
    timezone: str = "UTC"  # the site's zone: "today" starts at its midnight, times read in it


@dataclass(frozen=True, slots=True)
class CountResult:
    """The answer of SQL to a :class:`CountQuery`: the total, per camera, the first and last
    start, and the newest items (id, camera, start) to cite."""

    query: CountQuery
    total: int
    by_camera: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None
    samples: list[tuple[str, str, datetime]] = field(default_factory=list)
    cameras_counted: tuple[str, ...] | None = None  # None: every camera

    def noun(self) -> str:
        """What was counted, singular or plural by the total ("person", "people")."""
        q = self.query
        one = self.total == 1
        vehicles = set(_LABELS["vehicles"])
        if len(q.labels) == 1:
            label = q.labels[0]
            plural = "people" if label == "person" else f"{label}s" if label != "bus" else "buses"
            thing = label if one else plural
        elif q.labels and set(q.labels) <= vehicles:
            thing = "vehicle" if one else "vehicles"
        else:
            thing = "object" if one else "objects"
        if q.kind == "incident":
            base = "incident" if one else "incidents"
            return f"{base} with {', '.join(q.labels)}" if q.labels else base
        return thing

    def sentence(self) -> str:
        """The count as a sentence, stated by code (the LLM must not change it)."""
        q = self.query
        if q.camera_ids:
            where = f" on camera {', '.join(q.camera_ids)}"
        elif self.cameras_counted is None:
            where = " across all cameras"
        else:
            where = f" across cameras {', '.join(self.cameras_counted) or '(none)'}"
        verb = "was" if self.total == 1 else "were"
        text = f"{self.total} {self.noun()} {verb} seen{where}"
        if q.window:
            text += f" {q.window}"
        if self.total and self.first_at and self.last_at:
            zone = zoneinfo.ZoneInfo(q.timezone)
            first, last = self.first_at.astimezone(zone), self.last_at.astimezone(zone)
            text += f", between {first:%Y-%m-%d %H:%M:%S} and {local_time(last, q.timezone)}"
        if len(self.by_camera) > 1:
            text += " (" + ", ".join(f"{c}: {n}" for c, n in sorted(self.by_camera.items())) + ")"
        unit = "incident" if q.kind == "incident" else "tracked object"
        return f"{text}. Each {unit} counts once; counted from the database."


def _number(word: str | None) -> int:
    if word is None:
        return 1
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text) is not None


def local_time(at: datetime, timezone: str = "UTC") -> str:
    """``at`` as an answer writes it: in the site's zone, with the zone named
    ("2026-12-07 13:55:00 CET (Europe/Paris)", or "... UTC")."""
    local = at.astimezone(zoneinfo.ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M:%S} {_zone_words(timezone, local)}"


def _zone_words(timezone: str, at: datetime) -> str:
    """How a time's zone is written in an answer: "UTC", or "CET (Europe/Paris)"."""
    if timezone == "UTC":
        return "UTC"
    abbrev = at.tzname()
    return f"{abbrev} ({timezone})" if abbrev and abbrev != timezone else timezone


def _local_midnight(now: datetime, zone: zoneinfo.ZoneInfo, days_back: int = 0) -> datetime:
    """The site's midnight ``days_back`` days before ``now``'s local date (a calendar day, not
    24 hours: a day with a clock change is 23 or 25 hours long)."""
    local = now.astimezone(zone).date() - timedelta(days=days_back)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def parse_count_question(
    question: str, cameras: Mapping[str, str | None], now: datetime, timezone: str = "UTC"
) -> CountQuery | None:
    """A counting question read by rules, or None if the question does not ask for a count.

    Args:
        question: The question.
        cameras: The cameras the caller may see, id to name (a camera is named in the question
            by its id or its name).
        now: The current time (tz-aware), the end of a "last N minutes" window.
        timezone: The site's IANA zone: "today" and "yesterday" are its calendar days.
    """
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    zone = zoneinfo.ZoneInfo(timezone)
    if not _INTENT.search(question):
        return None
    text = question.lower()
    labels: list[str] = []
    for word, mapped in _LABELS.items():
        if _has_word(text, word):
            labels.extend(m for m in mapped if m not in labels)
    kind: Literal["event", "incident"] = (
        "incident" if re.search(r"\bincidents?\b", text) else "event"
    )
    named = tuple(
        sorted(
            cid
            for cid, name in cameras.items()
            if _has_word(text, cid) or (name is not None and name and _has_word(text, name))
        )
    )
    since: datetime | None = None
    until: datetime | None = None
    window = ""
    if m := _WINDOW.search(question):
        n = _number(m.group(1))
        unit = m.group(2).lower()
        since, until = now - timedelta(seconds=n * _UNITS[unit]), now
        window = f"in the last {n} {unit}{'s' if n != 1 else ''}"
    elif re.search(r"\btoday\b", text):
        since, until = _local_midnight(now, zone), now
        window = f"today ({timezone})"
    elif re.search(r"\byesterday\b", text):
        since, until = _local_midnight(now, zone, 1), _local_midnight(now, zone)
        window = f"yesterday ({timezone})"
    return CountQuery(kind, tuple(labels), named, since, until, window, timezone)


def count_items(engine: Engine, query: CountQuery, scope: Collection[str] | None) -> CountResult:
    """Count what ``query`` asks among the cameras of ``scope`` (None: every camera; camera
    ids only, groups already resolved)."""
    cameras: list[str] | None = None
    if scope is not None:
        cameras = sorted(scope)
    if query.camera_ids:
        cameras = [c for c in query.camera_ids if cameras is None or c in cameras]
    table = INCIDENTS if query.kind == "incident" else EVENTS
    conds: list[sa.ColumnElement[bool]] = []
    if cameras is not None:
        conds.append(table.c.camera_id.in_(cameras))
    if query.since is not None:
        conds.append(table.c.started_at >= query.since)
    if query.until is not None:
        conds.append(table.c.started_at <= query.until)
    if query.labels:
        if query.kind == "incident":
            conds.append(
                table.c.id.in_(
                    sa.select(INCIDENT_MEMBERS.c.incident_id).where(
                        INCIDENT_MEMBERS.c.label.in_(query.labels)
                    )
                )
            )
        else:
            conds.append(table.c.label.in_(query.labels))
    where = sa.and_(sa.true(), *conds)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                table.c.camera_id,
                sa.func.count(),
                sa.func.min(table.c.started_at),
                sa.func.max(table.c.started_at),
            )
            .where(where)
            .group_by(table.c.camera_id)
        ).all()
        samples = conn.execute(
            sa.select(table.c.id, table.c.camera_id, table.c.started_at)
            .where(where)
            .order_by(table.c.started_at.desc(), table.c.id)
            .limit(MAX_SAMPLES)
        ).all()
    by_camera = {str(r[0]): int(r[1]) for r in rows}
    firsts = [as_utc(r[2], "started_at") for r in rows if r[2] is not None]
    lasts = [as_utc(r[3], "started_at") for r in rows if r[3] is not None]
    return CountResult(
        query=query,
        total=sum(by_camera.values()),
        by_camera=by_camera,
        first_at=min(firsts) if firsts else None,
        last_at=max(lasts) if lasts else None,
        samples=[(str(r[0]), str(r[1]), as_utc(r[2], "started_at")) for r in samples],
        cameras_counted=tuple(cameras) if cameras is not None else None,
    )
