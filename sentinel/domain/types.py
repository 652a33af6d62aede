"""Value types shared by the pipeline: boxes, detections, tracks and events.

Everything here is plain data (frozen dataclasses), free of Ray, FastAPI and the database, so the
pipeline logic built on it is unit-tested without a cluster.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

# Namespace of the deterministic event ids (uuid5): the same camera, epoch and track always give
# the same id, which is what makes event writes idempotent.
EVENT_NAMESPACE = uuid.UUID("7b1f0c1e-5d0a-4b8e-9a57-2f3c6f0e9d41")


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixel coordinates of the full frame (x1 < x2, y1 < y2)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if not (self.x2 >= self.x1 and self.y2 >= self.y1):
            raise ValueError(f"box must have x2 >= x1 and y2 >= y1, but got {self.as_list()}")

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def iou(self, other: Box) -> float:
        ix1, iy1 = max(self.x1, other.x1), max(self.y1, other.y1)
        ix2, iy2 = min(self.x2, other.x2), min(self.y2, other.y2)
        inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found by the detector in one frame.

    ``appearance`` is an optional descriptor of the box's pixels (see
    :mod:`sentinel.domain.appearance`), set by the pipeline when it has the frame; the tracker
    uses it to re-associate lost tracks. It takes no part in equality.
    """

    box: Box
    label: str
    score: float
    class_id: int = -1
    appearance: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


class EventChangeKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"


@dataclass(slots=True)
class EventState:
    """The current state of one event as the pipeline knows it (what gets upserted)."""

    id: str
    camera_id: str
    label: str
    track_id: int
    started_at: datetime
    last_seen_at: datetime
    score: float
    box: Box
    best_at: datetime
    ended_at: datetime | None = None
    hits: int = 0
    path: list[tuple[float, float]] = field(default_factory=list)
    # The camera's zones the object has been in, in the order it first was in each.
    zones: list[str] = field(default_factory=list)
    # The registry version of the detector that served the frame the event opened on (None:
    # not known), so operators' verdicts can be counted per model during a canary.
    model_version: int | None = None


@dataclass(frozen=True, slots=True)
class EventChange:
    """A change the pipeline asks the store to persist.

    ``new_best`` is true when this frame became the event's best frame, so its snapshot should be
    (re)written from the frame that produced this change.
    """

    kind: EventChangeKind
    event: EventState
    new_best: bool = False


def event_id(camera_id: str, epoch: str, track_id: int) -> str:
    """The deterministic id of the event of ``track_id`` in ``camera_id``'s stream ``epoch``."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{camera_id}/{epoch}/{track_id}"))


@dataclass(frozen=True, slots=True)
class DetectResult:
    """Detections for one frame, with the facts a caller needs for its metrics."""

    detections: list[Detection]
    batch_size: int
    infer_ms: float
    # Distinct cameras whose frames were in this frame's batch (1: none but the caller's).
    batch_cameras: int = 1
    # The registry version of the model that produced it (None: an unversioned model file).
    model_version: int | None = None
