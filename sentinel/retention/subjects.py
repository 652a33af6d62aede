"""Data-subject requests, decided without I/O: what a subject resolves to, what each store
erases or keeps under a legal hold, and the per-store steps and report (issue 16).

A subject is given by the events a face photo matched, by a camera and a time range, or by
event and incident ids. ``sentinel.retention.requests`` reads what those touch into a
:class:`Resolved` (events, their incidents and alerts, the segments covering the events'
spans, annotation items whose frames fall in those spans, dataset versions holding those
items, training runs that used those versions); :func:`plan_erasure` splits it by the active
legal holds into what each store erases and what it keeps (reported as held, never skipped
silently). Steps record each store's outcome; :func:`overall_status` never calls a request
done while a store is unfinished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sentinel.domain.holds import HeldRange, HoldView, export_holder, holding

__all__ = [
    "ACCESS_STORES",
    "ERASURE_STORES",
    "AlertRef",
    "DatasetRef",
    "ErasurePlan",
    "EventRef",
    "ExportRef",
    "Held",
    "IncidentRef",
    "ItemRef",
    "RequestKind",
    "Resolved",
    "RunRef",
    "SegmentRef",
    "Step",
    "Subject",
    "event_spans",
    "items_in_spans",
    "new_steps",
    "overall_status",
    "overlaps_any",
    "plan_erasure",
    "query_windows",
    "report_of",
]

RequestKind = Literal["access", "erasure"]
# The stores an erasure goes through, in order: the database rows last, so a request cut
# short still finds every row it has yet to erase.
ERASURE_STORES: tuple[str, ...] = (
    "search_index",
    "face_prints",
    "snapshots",
    "clips",
    "exports",
    "annotations",
    "datasets",
    "mlflow",
    "database",
)
# What an access archive holds, one step each (all written into one zip).
ACCESS_STORES: tuple[str, ...] = (
    "events",
    "incidents",
    "alerts",
    "snapshots",
    "clips",
    "exports",
    "search_index",
    "annotations",
    "archive",
)
STEP_STATUSES = frozenset({"pending", "done", "held", "failed"})
_MAX_IDS = 200  # ids listed per store in a report (counts are always exact)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a request is about: matched face events, a camera range, or ids."""

    by: Literal["face", "range", "ids"]
    camera_id: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    event_ids: tuple[str, ...] = ()
    incident_ids: tuple[str, ...] = ()
    distances: tuple[float, ...] = ()  # face: the matches' distances, as event_ids

    def __post_init__(self) -> None:
        if self.by == "range":
            if self.camera_id is None or self.start_at is None or self.end_at is None:
                raise ValueError("a range subject needs camera_id, start_at and end_at")
            if self.end_at <= self.start_at:
                raise ValueError(f"end_at must be after start_at, but got {self.start_at}..")
        elif self.by == "ids" and not (self.event_ids or self.incident_ids):
            raise ValueError("an ids subject needs event_ids or incident_ids")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start_at", "end_at"):
            out[key] = None if out[key] is None else out[key].isoformat()
        out["event_ids"], out["incident_ids"] = list(self.event_ids), list(self.incident_ids)
        out["distances"] = list(self.distances)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Subject:
        def when(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            by=raw["by"],
            camera_id=raw.get("camera_id"),
            start_at=when(raw.get("start_at")),
            end_at=when(raw.get("end_at")),
            event_ids=tuple(raw.get("event_ids") or ()),
            incident_ids=tuple(raw.get("incident_ids") or ()),
            distances=tuple(raw.get("distances") or ()),
        )


@dataclass(frozen=True, slots=True)
class EventRef:
    id: str
    camera_id: str
    started_at: datetime
    ended_at: datetime  # the last sighting for an event still open
    snapshot_key: str | None


@dataclass(frozen=True, slots=True)
class IncidentRef:
    id: str
    camera_id: str
    started_at: datetime
    ended_at: datetime | None
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AlertRef:
    id: str
    camera_id: str
    event_id: str
    incident_id: str | None


@dataclass(frozen=True, slots=True)
class SegmentRef:
    id: str
    camera_id: str
    start_at: datetime
    end_at: datetime
    object_key: str
    archive_key: str | None


@dataclass(frozen=True, slots=True)
class ExportRef:
    """An exported clip sharing time with one of the subject's events."""

    id: str
    camera_id: str
    start_at: datetime
    end_at: datetime
    object_key: str


@dataclass(frozen=True, slots=True)
class ItemRef:
    """An annotation item (a frame in the queue) whose frame falls in a subject's event."""

    id: str
    camera_id: str
    frame_ts: datetime
    image_key: str


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A ready dataset version holding some of the subject's annotation items."""

    name: str
    version: int
    item_ids: tuple[str, ...]
    locked_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunRef:
    """A training run that used one of the subject's dataset versions."""

    id: str
    mlflow_run_id: str | None
    dataset: str
    dataset_version: int


@dataclass
class Resolved:
    """Everything a subject touches, as read from the stores (a request's ``plan``)."""

    events: list[EventRef] = field(default_factory=list)
    incidents: list[IncidentRef] = field(default_factory=list)
    alerts: list[AlertRef] = field(default_factory=list)
    segments: list[SegmentRef] = field(default_factory=list)
    items: list[ItemRef] = field(default_factory=list)
    datasets: list[DatasetRef] = field(default_factory=list)
    runs: list[RunRef] = field(default_factory=list)
    face_prints: int = 0
    exports: list[ExportRef] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = _jsonable(asdict(self))
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Resolved:
        def when(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            events=[
                EventRef(
                    e["id"],
                    e["camera_id"],
                    datetime.fromisoformat(e["started_at"]),
                    datetime.fromisoformat(e["ended_at"]),
                    e["snapshot_key"],
                )
                for e in raw.get("events", ())
            ],
            incidents=[
                IncidentRef(
                    i["id"],
                    i["camera_id"],
                    datetime.fromisoformat(i["started_at"]),
                    when(i["ended_at"]),
                    tuple(i["members"]),
                )
                for i in raw.get("incidents", ())
            ],
            alerts=[AlertRef(**a) for a in raw.get("alerts", ())],
            segments=[
                SegmentRef(
                    s["id"],
                    s["camera_id"],
                    datetime.fromisoformat(s["start_at"]),
                    datetime.fromisoformat(s["end_at"]),
                    s["object_key"],
                    s["archive_key"],
                )
                for s in raw.get("segments", ())
            ],
            items=[
                ItemRef(
                    i["id"], i["camera_id"], datetime.fromisoformat(i["frame_ts"]), i["image_key"]
                )
                for i in raw.get("items", ())
            ],
            datasets=[
                DatasetRef(
                    d["name"], int(d["version"]), tuple(d["item_ids"]), tuple(d["locked_by"])
                )
                for d in raw.get("datasets", ())
            ],
            runs=[RunRef(**r) for r in raw.get("runs", ())],
            face_prints=int(raw.get("face_prints", 0)),
            exports=[
                ExportRef(
                    x["id"],
                    x["camera_id"],
                    datetime.fromisoformat(x["start_at"]),
                    datetime.fromisoformat(x["end_at"]),
                    x["object_key"],
                )
                for x in raw.get("exports", ())
            ],
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def event_spans(events: Iterable[EventRef]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per camera, the events' spans merged where they touch or overlap, by start."""
    by_camera: dict[str, list[tuple[datetime, datetime]]] = {}
    for ev in events:
        by_camera.setdefault(ev.camera_id, []).append((ev.started_at, ev.ended_at))
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for camera_id, spans in by_camera.items():
        merged: list[tuple[datetime, datetime]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        out[camera_id] = merged
    return out


def query_windows(
    spans: Sequence[tuple[datetime, datetime]], gap: timedelta = timedelta(hours=1)
) -> list[tuple[datetime, datetime]]:
    """Sorted spans grouped into windows: spans closer than ``gap`` share one window (a store
    is asked once per window, not once per event)."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def overlaps_any(
    start: datetime, end: datetime, spans: Sequence[tuple[datetime, datetime]]
) -> bool:
    """Whether ``[start, end]`` shares time with one of ``spans``."""
    return any(start <= e and end >= s for s, e in spans)


def items_in_spans(
    items: Iterable[ItemRef], spans: Mapping[str, Sequence[tuple[datetime, datetime]]]
) -> list[ItemRef]:
    """The annotation items whose frame was taken on their camera within one of ``spans``."""
    return [
        item
        for item in items
        if any(start <= item.frame_ts <= end for start, end in spans.get(item.camera_id, ()))
    ]


@dataclass(frozen=True, slots=True)
class Held:
    """An item a legal hold keeps: the store reports it, and the request ends partial."""

    id: str
    hold_id: str


@dataclass
class ErasurePlan:
    """What each store erases, and what it keeps because of a hold.

    ``incidents_deleted`` lose every event (deleted); ``incidents_detached`` keep other
    events (only the subject's events leave them). ``search_ids`` are the index entries to
    delete (events and deleted incidents); ``search_reindex`` incidents whose document
    changes. ``datasets`` maps ``(name, version)`` to the item ids to leave out of it.
    """

    events: list[EventRef] = field(default_factory=list)
    incidents_deleted: list[str] = field(default_factory=list)
    incidents_detached: dict[str, list[str]] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    segments: list[SegmentRef] = field(default_factory=list)
    exports: list[ExportRef] = field(default_factory=list)
    items: list[ItemRef] = field(default_factory=list)
    datasets: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    runs: list[RunRef] = field(default_factory=list)
    search_ids: list[str] = field(default_factory=list)
    search_reindex: list[str] = field(default_factory=list)
    held: dict[str, list[Held]] = field(default_factory=dict)

    def hold(self, store: str, item_id: str, hold_id: str) -> None:
        self.held.setdefault(store, []).append(Held(item_id, hold_id))


def plan_erasure(
    resolved: Resolved,
    ranges: Mapping[str, Sequence[HeldRange]],
    holds: Sequence[HoldView] = (),
) -> ErasurePlan:
    """Splits what a subject touches into what each store erases and what holds keep.

    An event under a hold keeps its snapshot, face prints, index entry and alert; an
    incident is kept while any hold covers it (then only its unheld subject events leave
    it) and deleted once no event of its own is left; a segment, an annotation item (and the
    dataset items made from it) under a hold stay; an export held by name (``holds``) or
    copying held footage stays. The training runs whose dataset versions
    lose items lose their MLflow artifacts.
    """
    plan = ErasurePlan()
    held_events: set[str] = set()
    for ev in resolved.events:
        hold_id = holding(ranges, ev.camera_id, ev.started_at, ev.ended_at)
        if hold_id is None:
            plan.events.append(ev)
        else:
            held_events.add(ev.id)
            for store in ("database", "snapshots", "face_prints", "search_index"):
                plan.hold(store, ev.id, hold_id)
    erased = {ev.id for ev in plan.events}

    kept_incidents: set[str] = set()
    for inc in resolved.incidents:
        leaving = [m for m in inc.members if m in erased]
        hold_id = holding(ranges, inc.camera_id, inc.started_at, inc.ended_at)
        if hold_id is not None or len(leaving) < len(inc.members):
            kept_incidents.add(inc.id)
            if hold_id is not None and any(m in held_events for m in inc.members):
                plan.hold("database", inc.id, hold_id)
            if leaving:
                plan.incidents_detached[inc.id] = leaving
                plan.search_reindex.append(inc.id)
        else:
            plan.incidents_deleted.append(inc.id)
    deleted = set(plan.incidents_deleted)

    for alert in resolved.alerts:
        # An alert describes its event (and incident): it goes with either; an alert of a
        # kept incident raised by someone else's event stays.
        if alert.event_id in held_events:
            plan.hold("database", alert.id, _hold_of(plan, alert.event_id))
        elif alert.event_id in erased or alert.incident_id in deleted:
            plan.alerts.append(alert.id)

    for seg in resolved.segments:
        hold_id = holding(ranges, seg.camera_id, seg.start_at, seg.end_at)
        if hold_id is None:
            plan.segments.append(seg)
        else:
            plan.hold("clips", seg.id, hold_id)

    for exp in resolved.exports:
        hold_id = export_holder(exp.id, exp.camera_id, exp.start_at, exp.end_at, holds, ranges)
        if hold_id is None:
            plan.exports.append(exp)
        else:
            plan.hold("exports", exp.id, hold_id)

    held_items: set[str] = set()
    for item in resolved.items:
        hold_id = holding(ranges, item.camera_id, item.frame_ts, item.frame_ts)
        if hold_id is None:
            plan.items.append(item)
        else:
            held_items.add(item.id)
            plan.hold("annotations", item.id, hold_id)
    for ds in resolved.datasets:
        leaving = [i for i in ds.item_ids if i not in held_items]
        for item_id in ds.item_ids:
            if item_id in held_items:
                plan.hold("datasets", f"{ds.name}/v{ds.version}/{item_id}", _hold_of(plan, item_id))
        if leaving:
            plan.datasets[(ds.name, ds.version)] = leaving
    plan.runs = [r for r in resolved.runs if (r.dataset, r.dataset_version) in plan.datasets]
    plan.search_ids = [ev.id for ev in plan.events] + plan.incidents_deleted
    return plan


def _hold_of(plan: ErasurePlan, item_id: str) -> str:
    for held in plan.held.values():
        for h in held:
            if h.id == item_id:
                return h.hold_id
    return "unknown"


# -- steps and report ---------------------------------------------------------------------


@dataclass
class Step:
    """One store's outcome: ``pending`` (not run, or cut short), ``done``, ``held`` (finished;
    held items kept) or ``failed`` (with errors); counts of what it did; ids it erased or
    archived (the first 200); held items with their holds."""

    store: str
    status: str = "pending"
    counts: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    held: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.status not in STEP_STATUSES:
            raise ValueError(f"step status must be one of {sorted(STEP_STATUSES)}")

    @property
    def finished(self) -> bool:
        return self.status in {"done", "held"}

    def finish(
        self, counts: Mapping[str, int], ids: Iterable[str], held: Sequence[Held] = ()
    ) -> None:
        """Marks the step finished: ``held`` when a hold kept something, else ``done``."""
        self.counts = dict(counts)
        self.ids = list(ids)[:_MAX_IDS]
        self.held = [{"id": h.id, "hold_id": h.hold_id} for h in held]
        self.counts["held"] = len(held)
        self.status = "held" if held else "done"
        self.errors = []

    def fail(self, error: str) -> None:
        self.status = "failed"
        self.errors = [*self.errors, error[:500]][-5:]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Step:
        return cls(**dict(raw))


def new_steps(kind: RequestKind) -> list[Step]:
    """The pending steps of a new request of ``kind``."""
    stores = ERASURE_STORES if kind == "erasure" else ACCESS_STORES
    return [Step(store) for store in stores]


def overall_status(steps: Sequence[Step]) -> str:
    """``done`` when every step is done; ``partial`` when every step finished and holds kept
    something; ``failed`` when a step failed; else ``pending`` (some not run yet)."""
    if any(s.status == "failed" for s in steps):
        return "failed"
    if not all(s.finished for s in steps):
        return "pending"
    return "partial" if any(s.status == "held" for s in steps) else "done"


def report_of(kind: str, steps: Sequence[Step]) -> str:
    """A one-paragraph report: each store and what happened to it."""
    parts = []
    for s in steps:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()) if v)
        what = {"done": "done", "held": "done except held items", "failed": "FAILED"}.get(
            s.status, "NOT DONE"
        )
        detail = f" ({counts})" if counts else ""
        errors = f": {s.errors[-1]}" if s.status == "failed" and s.errors else ""
        parts.append(f"{s.store}: {what}{detail}{errors}")
    return f"{kind} {overall_status(steps)}. " + "; ".join(parts) + "."
