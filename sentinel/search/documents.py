"""The searchable text and filter metadata of an event or an incident, built from facts.

Everything in a document is something the system measured or was told: the label, the named
colours of the object's crop, the zones, the camera's name and description, when it happened in
words (weekday, part of day, in the site's time zone), how long it stayed, which way it moved,
and the agent's summary when there is one. Metadata carries what filters need: the camera, the
label(s), the start as epoch seconds, and the kind (event or incident).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sentinel.domain.incidents import Incident
from sentinel.search.colours import CropColours
from sentinel.store.repo import StoredEvent

__all__ = [
    "CameraFacts",
    "SearchDocument",
    "direction_phrase",
    "dwell_phrase",
    "event_document",
    "incident_document",
    "part_of_day",
    "time_phrase",
]

Kind = Literal["event", "incident", "kb"]  # kb: a knowledge-base section (its own index)


@dataclass(frozen=True, slots=True)
class CameraFacts:
    """What a document says about the camera."""

    id: str
    name: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """One indexed item: its id (the event's or incident's), text and filter metadata."""

    id: str
    kind: Kind
    text: str
    camera_id: str
    label: str
    started_at: datetime
    extra: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, str | int | float | bool]:
        """Chroma metadata: scalars only; ``start`` is the start in epoch seconds."""
        return {
            "kind": self.kind,
            "camera_id": self.camera_id,
            "label": self.label,
            "start": int(self.started_at.timestamp()),
            **self.extra,
        }


def part_of_day(hour: int) -> str:
    """ "night" (21-5), "morning" (5-12), "afternoon" (12-17) or "evening" (17-21)."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, but got {hour}")
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 21:
        return "evening"
    return "night"


def time_phrase(at: datetime, timezone: str = "UTC") -> str:
    """ "on Tuesday afternoon at 14:05" in the site's zone (``at`` must be tz-aware)."""
    if at.tzinfo is None:
        raise ValueError("at must be tz-aware")
    local = at.astimezone(zoneinfo.ZoneInfo(timezone))
    return f"on {local.strftime('%A')} {part_of_day(local.hour)} at {local.strftime('%H:%M')}"


def dwell_phrase(seconds: float) -> str:
    """ "stayed 2 minutes" / "stayed 40 seconds" / "passed briefly" (under 5 s)."""
    if seconds < 5:
        return "passed briefly"
    if seconds < 90:
        return f"stayed {round(seconds)} seconds"
    if seconds < 90 * 60:
        return f"stayed {round(seconds / 60)} minutes"
    return f"stayed {seconds / 3600:.1f} hours"


def direction_phrase(
    path: tuple[tuple[float, float], ...] | list[tuple[float, float]], min_move: float = 20.0
) -> str:
    """Which way the object went in the image, from its first to its last path point.

    "walking left" / "right" / "away" (up the image) / "towards the camera" (down), by the
    larger displacement; "standing still" when it moved less than ``min_move`` pixels.
    """
    if len(path) < 2:
        return ""
    dx = path[-1][0] - path[0][0]
    dy = path[-1][1] - path[0][1]
    if max(abs(dx), abs(dy)) < min_move:
        return "standing still"
    if abs(dx) >= abs(dy):
        return "moving left" if dx < 0 else "moving right"
    return "moving away" if dy < 0 else "moving towards the camera"


def _camera_phrase(camera: CameraFacts) -> str:
    name = camera.name or camera.id
    text = f"seen by camera {name}"
    if camera.description:
        text += f" ({camera.description.strip().rstrip('.')})"
    return text


def _zones_phrase(zones: tuple[str, ...]) -> str:
    return f"in {', '.join(z.replace('_', ' ') for z in zones)}" if zones else ""


def _join(parts: list[str]) -> str:
    return ", ".join(p for p in parts if p) + "."


def event_document(
    ev: StoredEvent,
    camera: CameraFacts,
    *,
    colours: CropColours | None = None,
    summary: str | None = None,
    timezone: str = "UTC",
) -> SearchDocument:
    """The document of one event.

    Args:
        ev: The stored event.
        camera: The event's camera (its id, name and description).
        colours: The named colours of the object's crop, if its snapshot was read.
        summary: The agent's summary of the event, if it judged it.
        timezone: The site's IANA zone for the time phrase.
    """
    motion = direction_phrase(ev.path)
    verb = motion.replace("moving", "walking") if ev.label == "person" else motion
    end = ev.ended_at or ev.last_seen_at
    colour_text = colours.phrase(ev.label) if colours is not None else ""
    head = ev.label
    if colour_text and not colour_text.startswith("wearing"):
        head, colour_text = colour_text, ""
    parts = [
        head,
        colour_text,
        verb,
        _zones_phrase(ev.zones),
        _camera_phrase(camera),
        time_phrase(ev.started_at, timezone),
        dwell_phrase((end - ev.started_at).total_seconds()),
    ]
    text = _join(parts)
    if summary:
        text += f" Summary: {summary.strip()}"
    return SearchDocument(
        id=ev.id,
        kind="event",
        text=text,
        camera_id=ev.camera_id,
        label=ev.label,
        started_at=ev.started_at,
        extra={"snapshot": bool(ev.snapshot_key)},
    )


def incident_document(
    incident: Incident,
    camera: CameraFacts,
    *,
    summary: str | None = None,
    timezone: str = "UTC",
) -> SearchDocument:
    """The document of one incident: its members' labels, zones, camera, time and duration."""
    labels = " and ".join(incident.labels) or "objects"
    end = incident.ended_at or incident.last_seen_at
    parts = [
        f"incident with {len(incident.members)} objects: {labels}",
        _zones_phrase(incident.zones),
        _camera_phrase(camera),
        time_phrase(incident.started_at, timezone),
        dwell_phrase((end - incident.started_at).total_seconds()).replace("stayed", "lasted"),
    ]
    text = _join(parts)
    if summary:
        text += f" Summary: {summary.strip()}"
    return SearchDocument(
        id=incident.id,
        kind="incident",
        text=text,
        camera_id=incident.camera_id,
        label=incident.labels[0] if incident.labels else "",
        started_at=incident.started_at,
        extra={
            "members": len(incident.members),
            # The best member's snapshot stands for the incident ("" when none is known).
            "snapshot_event": incident.key_frames[0].event_id if incident.key_frames else "",
        },
    )
