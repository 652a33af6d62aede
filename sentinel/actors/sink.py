"""Where a camera's events go: the event table plus snapshot JPEGs in the object store."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sentinel.actors.incidents import IncidentKeeper
from sentinel.domain.render import Overlay, encode_jpeg
from sentinel.domain.types import EventChange, EventChangeKind, EventState
from sentinel.retention.blurring import BlurredSnapshotWriter
from sentinel.store.objects import ObjectStore, snapshot_key
from sentinel.store.repo import EventRepository

SNAPSHOT_MIN_INTERVAL_S = 2.0


@dataclass(slots=True)
class _PendingSnapshot:
    rgb: NDArray[np.uint8]
    overlay: Overlay


class StoreSink:
    """Upserts events and keeps each event's snapshot showing its best frame.

    A better frame arrives many times while a person walks in; encoding each one would cost a
    JPEG per frame, so a new best frame is kept in memory and written at most every
    ``SNAPSHOT_MIN_INTERVAL_S`` seconds, and always when the event opens or closes.
    With ``incidents``, the written changes then update the camera's incidents. With
    ``snapshots`` (a camera that blurs faces), the frame goes to that writer instead, which
    blurs and stores it off this thread and then points the event at it.
    """

    def __init__(
        self,
        camera_id: str,
        events: EventRepository,
        objects: ObjectStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[EventState], None] | None = None,
        incidents: IncidentKeeper | None = None,
        snapshots: BlurredSnapshotWriter | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.camera_id = camera_id
        self.on_event = on_event
        self.incidents = incidents
        self.events = events
        self.objects = objects
        self.clock = clock
        self._pending: dict[str, _PendingSnapshot] = {}
        self._written_at: dict[str, float] = {}

    def apply(self, changes: Sequence[EventChange], rgb: NDArray[np.uint8] | None) -> None:
        for change in changes:
            ev = change.event
            if change.new_best and rgb is not None:
                caption = f"{ev.label} {ev.score:.2f}"
                self._pending[ev.id] = _PendingSnapshot(rgb, Overlay(ev.box, ev.label, caption))
            due = self._due_snapshot(change)
            key = None
            if due is not None and self.snapshots is None:
                key = snapshot_key(self.camera_id, ev.id)
                self.objects.put(key, encode_jpeg(due.rgb, [due.overlay]), "image/jpeg")
            self.events.upsert(ev, key)
            if due is not None and self.snapshots is not None:  # after the row exists
                self.snapshots.submit(
                    ev.id, snapshot_key(self.camera_id, ev.id), due.rgb, due.overlay
                )
            if due is not None:  # written (or handed over): a failure above keeps it pending
                self._written_at[ev.id] = self.clock()
                self._pending.pop(ev.id, None)
            if self.on_event is not None:
                self.on_event(ev)  # e.g. the rule-based alert; idempotent, after the event
            if change.kind is EventChangeKind.CLOSED:
                self._pending.pop(ev.id, None)
                self._written_at.pop(ev.id, None)
        if self.incidents is not None:
            self.incidents.on_changes(changes)  # after the events: members exist when read

    def _due_snapshot(self, change: EventChange) -> _PendingSnapshot | None:
        """The event's pending best frame if it is due to be written now."""
        ev = change.event
        pending = self._pending.get(ev.id)
        if pending is None:
            return None
        now = self.clock()
        last = self._written_at.get(ev.id)
        due = (
            change.kind is not EventChangeKind.UPDATED
            or last is None
            or now - last >= SNAPSHOT_MIN_INTERVAL_S
        )
        return pending if due else None
