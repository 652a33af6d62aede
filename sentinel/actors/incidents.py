"""Where a camera's incidents go: the pure tracker fed by the sink, persisted, then judged.

The :class:`IncidentKeeper` owns the camera's :class:`IncidentTracker`. The sink hands it each
batch of event changes after the events were written; the runner asks it on every analysed
frame whether time alone closes or splits the open incident (``due``, cheap) and then lets it
(``tick``); a clean stop closes the open incident (``close_all``). Every incident change is
upserted (the newest revision wins) and passed to ``on_incident`` (the rule alerts). A write
that fails keeps the changes and raises: they are written again with the next call, and the
runner retries the event batch, which the tracker absorbs (replays change nothing).

On its first call the keeper adopts the camera's open incident from the store, with its
members' stored states, as the pipeline adopts open events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sentinel.domain.incidents import IncidentChange, IncidentConfig, IncidentTracker
from sentinel.domain.types import EventChange, EventState
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.repo import EventRepository

logger = logging.getLogger(__name__)


class IncidentKeeper:
    """Maintains one camera's incidents from its event changes.

    Args:
        camera_id: The camera.
        epoch: The camera run's epoch (the same as its events').
        config: Grouping settings.
        incidents: Where incidents are stored.
        events: Where the members' states are read from when adopting.
        on_incident: Called with every incident change once it is stored (e.g. rule alerts).
    """

    def __init__(
        self,
        camera_id: str,
        epoch: str,
        config: IncidentConfig,
        incidents: IncidentRepository,
        events: EventRepository,
        *,
        on_incident: Callable[[IncidentChange], None] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.tracker = IncidentTracker(camera_id, epoch, config)
        self.incidents = incidents
        self.events = events
        self.on_incident = on_incident
        self._adopted = False
        self._unsaved: list[IncidentChange] = []

    def on_changes(self, changes: Sequence[EventChange]) -> None:
        """Fold a batch of written event changes into the incidents and store the result."""
        if not changes:
            return
        wall = max(c.event.ended_at or c.event.last_seen_at for c in changes)
        self._adopt(wall)
        self._save(self.tracker.on_changes(changes, wall))

    def incident_of(self, event_id: str) -> str | None:
        """The open incident ``event_id`` is a member of, if any."""
        current = self.tracker.current
        return current.id if current is not None and event_id in current.members else None

    def due(self, wall: datetime) -> bool:
        """Whether :meth:`tick` has work at ``wall``: cheap enough for every frame."""
        return not self._adopted or bool(self._unsaved) or self.tracker.due(wall)

    def tick(self, wall: datetime) -> None:
        """Let time pass: close a quiet incident, split an overlong one; retry unsaved work."""
        self._adopt(wall)
        self._save(self.tracker.tick(wall))

    def close_all(self, wall: datetime) -> None:
        """Close the open incident (the camera stops cleanly)."""
        self._adopt(wall)
        self._save(self.tracker.close_all(wall))

    def _adopt(self, now: datetime) -> None:
        if self._adopted:
            return
        stored = []
        for incident in self.incidents.open_incidents(self.camera_id):
            members: list[EventState] = []
            for member_id in incident.members:
                event = self.events.get(member_id)
                if event is not None:
                    members.append(event.to_state())
            stored.append((incident, members))
        changes = self.tracker.adopt(stored, now)
        self._adopted = True
        if stored:
            logger.info("camera %s: adopted %d open incident(s)", self.camera_id, len(stored))
        self._save(changes)

    def _save(self, changes: Sequence[IncidentChange]) -> None:
        self._unsaved = [*self._unsaved, *changes]
        for change in self._unsaved:
            labels = {m.id: m.label for m in change.members}
            self.incidents.upsert(change.incident, labels)
            if self.on_incident is not None:
                self.on_incident(change)  # idempotent: a retried change alerts once
        self._unsaved = []
