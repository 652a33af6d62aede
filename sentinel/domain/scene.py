"""What tracked objects do relative to a camera's zones and lines: the facts rules match on.

The zone tracker (``domain/zones.py``) turns each analysed frame's tracks into ``SceneEvent``s;
the rule engine (``domain/rules.py``) matches them against rules. Both sides only share these
plain types, so either is unit-tested alone.

Coordinates are normalised to the frame: ``(0, 0)`` is the top-left corner, ``(1, 1)`` the
bottom-right, so zones survive a change of stream resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

Point = tuple[float, float]


class SceneEventKind(StrEnum):
    """What happened: an object was seen (anywhere), entered, left or stayed in a zone, or
    crossed a line."""

    SEEN = "seen"
    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"
    CROSS = "cross"


class CrossDirection(StrEnum):
    """A line's sides: a line from ``a`` to ``b`` has "in" on its left as drawn (looking from
    ``a`` towards ``b`` in image coordinates, y down), "out" on its right."""

    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True)
class SceneEvent:
    """One thing one tracked object did on one analysed frame.

    Attributes:
        kind: What happened.
        camera_id: The camera.
        track_id: The tracker's id of the object.
        event_id: The object's event (deterministic id), when it has one.
        label: The object's class.
        score: The object's detector confidence on this frame.
        at: Wall-clock time of the frame (timezone-aware).
        zone: The zone, for ``ENTER``, ``EXIT`` and ``DWELL``.
        line: The line, for ``CROSS``.
        direction: The side the object crossed to, for ``CROSS``.
        dwell_s: Time the object has been in ``zone`` so far (``DWELL``, ``EXIT``).
        count: Objects of this label in ``zone`` on this frame (``ENTER``, ``DWELL``), or in
            view (``SEEN``).
    """

    kind: SceneEventKind
    camera_id: str
    track_id: int
    event_id: str | None
    label: str
    score: float
    at: datetime
    zone: str | None = None
    line: str | None = None
    direction: CrossDirection | None = None
    dwell_s: float = 0.0
    count: int = 1
