"""Legal holds as the sweep and the deletion routes read them (``sentinel.domain.holds``
decides; this loads the active holds and the spans of the held incidents)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sentinel.domain.holds import HeldRange, HoldView, export_holder, held_ranges
from sentinel.store.hold_repo import HoldRepository
from sentinel.store.incident_repo import IncidentRepository

__all__ = ["ActiveHolds", "load_holds"]


@dataclass(frozen=True, slots=True)
class ActiveHolds:
    """The active holds and, per camera, the footage time they keep."""

    holds: list[HoldView]
    ranges: dict[str, list[HeldRange]]

    def spans(self, camera_id: str) -> list[tuple[datetime, datetime | None]]:
        """The camera's held ranges as ``(start, end or None)``."""
        return [(r.start_at, r.end_at) for r in self.ranges.get(camera_id, ())]

    def export_holder(
        self, export_id: str, camera_id: str, start: datetime, end: datetime
    ) -> str | None:
        """The id of a hold keeping that export, None if none does."""
        return export_holder(export_id, camera_id, start, end, self.holds, self.ranges)


def load_holds(holds: HoldRepository, incidents: IncidentRepository) -> ActiveHolds:
    """The active holds, with each held incident's span on its camera (an incident deleted
    meanwhile holds no footage)."""
    active = holds.active()
    spans: dict[str, tuple[str, datetime, datetime | None]] = {}
    for hold in active:
        if hold.kind == "incident" and hold.target_id:
            found = incidents.get(hold.target_id)
            if found is not None:
                spans[found.id] = (found.camera_id, found.started_at, found.ended_at)
    return ActiveHolds(active, held_ranges(active, spans))
