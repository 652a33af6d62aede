"""Incidents: a camera's overlapping events grouped into one thing an operator reviews.

What Frigate calls a review item. An incident opens with the first qualifying event of a camera,
grows while any member event is active (every event that is active while the incident is open
joins it), closes once no member has been active for ``quiet_gap_s``, and is split into a
linked continuation (a new incident whose ``previous_id`` names it) once it has lasted
``max_length_s`` while members are still active. Incidents never span cameras: a tracker
belongs to one camera and ignores other cameras' events.

The :class:`IncidentTracker` is pure: it folds the ``EventChange`` stream of one camera into
:class:`IncidentChange` outputs, including the *material changes* (a new label, a member's dwell
crossing a threshold) the agent re-judges on. Incident ids are deterministic (uuid5 of camera,
epoch and first member, and of the previous incident for a continuation), so a replayed change
stream rebuilds the same incidents, and ``revision`` counts the states a tracker emitted so
the store keeps only the newest one. After a restart, :meth:`IncidentTracker.adopt` takes over
the stored open incident with its members.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sentinel.domain.types import EventChange, EventState

# Namespace of the deterministic incident ids (uuid5), apart from the events' one.
INCIDENT_NAMESPACE = uuid.UUID("0c6f3a52-93a1-4f47-b1f4-6a2d9e1c7b35")


def incident_id(
    camera_id: str, epoch: str, first_member_id: str, previous_id: str | None = None
) -> str:
    """The deterministic id of an incident.

    Args:
        camera_id: The incident's camera.
        epoch: The tracker's lifetime in the camera's stream (as for events).
        first_member_id: The id of the incident's first member event.
        previous_id: For a continuation, the incident it continues.
    """
    key = f"{camera_id}/{epoch}/{first_member_id}"
    if previous_id is not None:
        key += f"/after/{previous_id}"
    return str(uuid.uuid5(INCIDENT_NAMESPACE, key))


class IncidentStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class IncidentChangeKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"


class MaterialKind(StrEnum):
    NEW_LABEL = "new_label"
    DWELL = "dwell"
    ZONE = "zone"  # a member was in a zone the incident had not been in


@dataclass(frozen=True, slots=True)
class KeyFrame:
    """One of an incident's best snapshots: a member event's best frame and its score."""

    event_id: str
    label: str
    score: float
    at: datetime


@dataclass(frozen=True, slots=True)
class MaterialChange:
    """A change that may alter the agent's judgement of an incident."""

    kind: MaterialKind
    event_id: str
    label: str
    detail: str


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident's state, as the tracker emits it and the store keeps it.

    ``members`` are event ids in the order they joined; ``labels`` the members' labels in the
    order they first appeared; ``zones`` the camera's zones its members were in (their events'
    ``zones``), in the order they first appeared; ``key_frames`` are the
    best member snapshots, best first; ``revision`` grows with every emitted state.
    """

    id: str
    camera_id: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    members: tuple[str, ...]
    labels: tuple[str, ...]
    key_frames: tuple[KeyFrame, ...] = ()
    zones: tuple[str, ...] = ()
    previous_id: str | None = None
    revision: int = 1

    @property
    def status(self) -> IncidentStatus:
        return IncidentStatus.OPEN if self.ended_at is None else IncidentStatus.CLOSED


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """A new incident state to persist, with the material changes that led to it."""

    kind: IncidentChangeKind
    incident: Incident
    material: tuple[MaterialChange, ...] = ()
    # The members' latest states as the tracker knows them (what rules judge the incident by).
    members: tuple[EventState, ...] = ()


@dataclass(frozen=True)
class IncidentConfig:
    """Settings of incident grouping.

    Attributes:
        quiet_gap_s: An incident closes once none of its members has been active this long.
        max_length_s: An incident still active after this long is closed and continued by a
            linked incident.
        key_frames: How many best member snapshots an incident keeps.
        dwell_thresholds_s: A member's dwell crossing one of these is a material change.
        labels: Labels of events that may open an incident (any event active meanwhile joins
            it); None lets every event open one.
    """

    quiet_gap_s: float = 30.0
    max_length_s: float = 600.0
    key_frames: int = 3
    dwell_thresholds_s: tuple[float, ...] = (30.0, 120.0)
    labels: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.quiet_gap_s >= 0.0:
            raise ValueError(f"quiet_gap_s must be >= 0, but got {self.quiet_gap_s}")
        if not self.max_length_s > 0.0:
            raise ValueError(f"max_length_s must be > 0, but got {self.max_length_s}")
        if not 1 <= self.key_frames <= 20:
            raise ValueError(f"key_frames must be in 1..20, but got {self.key_frames}")
        if any(not t > 0.0 for t in self.dwell_thresholds_s):
            raise ValueError(
                f"dwell_thresholds_s must all be > 0, but got {list(self.dwell_thresholds_s)}"
            )
        if list(self.dwell_thresholds_s) != sorted(set(self.dwell_thresholds_s)):
            raise ValueError(
                "dwell_thresholds_s must be strictly increasing, but got "
                f"{list(self.dwell_thresholds_s)}"
            )


def dwell_s(event: EventState) -> float:
    """Seconds ``event`` has been (or was) in view."""
    end = event.ended_at or event.last_seen_at
    return max(0.0, (end - event.started_at).total_seconds())


class _Open:
    """Tracker-side state of the open incident."""

    def __init__(
        self, id_: str, started_at: datetime, previous_id: str | None, revision: int
    ) -> None:
        self.id = id_
        self.started_at = started_at
        self.previous_id = previous_id
        self.revision = revision
        self.members: dict[str, EventState] = {}
        self.labels: list[str] = []
        self.zones: list[str] = []
        self.crossed: dict[str, int] = {}

    @property
    def active(self) -> list[EventState]:
        return [m for m in self.members.values() if m.ended_at is None]

    @property
    def last_seen_at(self) -> datetime:
        return max(m.last_seen_at for m in self.members.values())

    @property
    def last_active_at(self) -> datetime:
        return max(m.ended_at or m.last_seen_at for m in self.members.values())


class IncidentTracker:
    """Groups one camera's events into incidents.

    Args:
        camera_id: The camera; other cameras' events are ignored.
        epoch: This tracker's lifetime in the camera's stream (as for :class:`EventBuilder`).
        config: Grouping settings.
    """

    def __init__(self, camera_id: str, epoch: str, config: IncidentConfig | None = None) -> None:
        self.camera_id = camera_id
        self.epoch = epoch
        self.config = config if config is not None else IncidentConfig()
        self._open: _Open | None = None
        self._active: dict[str, EventState] = {}

    @property
    def current(self) -> Incident | None:
        """The open incident, or None."""
        return None if self._open is None else self._snapshot(self._open, None)

    def due(self, wall: datetime) -> bool:
        """Whether time alone would close or split the open incident at ``wall`` (cheap)."""
        inc = self._open
        if inc is None:
            return False
        if not inc.active:
            return (wall - inc.last_active_at).total_seconds() >= self.config.quiet_gap_s
        return (wall - inc.started_at).total_seconds() >= self.config.max_length_s

    def tick(self, wall: datetime) -> list[IncidentChange]:
        """Account for time passing: close a quiet incident, split an overlong one."""
        return self._expire(wall)

    def on_changes(self, changes: Sequence[EventChange], wall: datetime) -> list[IncidentChange]:
        """Fold a batch of event changes (in order) into the incidents.

        Args:
            changes: The pipeline's event changes of this camera.
            wall: Wall-clock time of the batch (the frame that produced it).

        Returns:
            The incident changes to persist, in order: at most one per incident and kind.
        """
        out = self._expire(wall)
        opened = False
        touched = False
        material: list[MaterialChange] = []
        for change in changes:
            ev = change.event
            if ev.camera_id != self.camera_id:
                continue
            if ev.ended_at is None:
                self._active[ev.id] = ev
            else:
                self._active.pop(ev.id, None)
            inc = self._open
            if inc is None:
                if ev.ended_at is None and self._qualifies(ev):
                    inc = self._start(ev)
                    opened = True
                continue
            material.extend(self._join(inc, ev, announce=not opened))
            touched = True
        if self._open is not None and (opened or touched):
            kind = IncidentChangeKind.OPENED if opened else IncidentChangeKind.UPDATED
            out.append(self._emit(kind, self._open, None, tuple(material)))
        return out

    def adopt(
        self, incidents: Sequence[tuple[Incident, Sequence[EventState]]], now: datetime
    ) -> list[IncidentChange]:
        """Take over the store's open incidents of this camera (after a restart).

        The newest open incident becomes this tracker's open incident, with its members'
        stored states (members still open count as active until their events close); an older
        open one (left by a crash) is closed at once. Other cameras' and closed incidents are
        ignored, and so is everything when an incident is already open here.

        Args:
            incidents: Open incidents with their members' states.
            now: Wall-clock time of the adoption.

        Returns:
            CLOSED changes of the older open incidents, to persist.
        """
        mine = [
            (inc, members)
            for inc, members in incidents
            if inc.camera_id == self.camera_id and inc.ended_at is None
        ]
        if self._open is not None or not mine:
            return []
        mine.sort(key=lambda pair: (pair[0].started_at, pair[0].id))
        out: list[IncidentChange] = []
        for inc, members in mine[:-1]:
            end = max((m.ended_at or m.last_seen_at for m in members), default=inc.last_seen_at)
            closed = replace(inc, ended_at=max(end, inc.last_seen_at), revision=inc.revision + 1)
            out.append(IncidentChange(IncidentChangeKind.CLOSED, closed))
        inc, members = mine[-1]
        state = _Open(inc.id, inc.started_at, inc.previous_id, inc.revision)
        by_id = {m.id: m for m in members if m.camera_id == self.camera_id}
        for member_id in inc.members:
            member = by_id.get(member_id)
            if member is None:
                continue
            state.members[member.id] = member
            state.crossed[member.id] = self._crossed(member)
            if member.ended_at is None:
                self._active[member.id] = member
        state.labels = list(inc.labels)
        state.zones = list(inc.zones)
        for member in state.members.values():
            if member.label not in state.labels:
                state.labels.append(member.label)
            state.zones.extend(z for z in member.zones if z not in state.zones)
        if not state.members:  # nothing left to judge it by: close it as stored
            closed = replace(inc, ended_at=inc.last_seen_at, revision=inc.revision + 1)
            return [*out, IncidentChange(IncidentChangeKind.CLOSED, closed)]
        self._open = state
        return out

    def close_all(self, wall: datetime) -> list[IncidentChange]:
        """Close the open incident (clean stop): at its last activity, or now if still active."""
        inc = self._open
        if inc is None:
            return []
        end = wall if inc.active else inc.last_active_at
        self._open = None
        self._active.clear()
        return [self._emit(IncidentChangeKind.CLOSED, inc, end, ())]

    # -- internals ---------------------------------------------------------------------------

    def _qualifies(self, event: EventState) -> bool:
        labels = self.config.labels
        return labels is None or event.label in labels

    def _start(self, first: EventState) -> _Open:
        inc = _Open(incident_id(self.camera_id, self.epoch, first.id), first.started_at, None, 0)
        self._open = inc
        self._join(inc, first, announce=False)
        others = sorted(
            (e for e in self._active.values() if e.id != first.id),
            key=lambda e: (e.started_at, e.id),
        )
        for other in others:
            self._join(inc, other, announce=False)
        inc.started_at = min(m.started_at for m in inc.members.values())
        return inc

    def _join(self, inc: _Open, ev: EventState, *, announce: bool) -> list[MaterialChange]:
        """Add or refresh a member; the material changes it makes (if ``announce``)."""
        material: list[MaterialChange] = []
        if ev.label not in inc.labels:
            inc.labels.append(ev.label)
            if announce:
                material.append(
                    MaterialChange(MaterialKind.NEW_LABEL, ev.id, ev.label, f"a {ev.label} joined")
                )
        for zone in ev.zones:
            if zone not in inc.zones:
                inc.zones.append(zone)
                if announce:
                    detail = f"a {ev.label} entered the zone {zone!r}"
                    material.append(MaterialChange(MaterialKind.ZONE, ev.id, ev.label, detail))
        inc.members[ev.id] = ev
        before = inc.crossed.get(ev.id, 0)
        after = self._crossed(ev)
        inc.crossed[ev.id] = max(before, after)
        if announce and after > before:
            threshold = self.config.dwell_thresholds_s[after - 1]
            material.append(
                MaterialChange(
                    MaterialKind.DWELL,
                    ev.id,
                    ev.label,
                    f"a {ev.label} has been in view for at least {threshold:g} s",
                )
            )
        return material

    def _crossed(self, ev: EventState) -> int:
        dwell = dwell_s(ev)
        return sum(1 for t in self.config.dwell_thresholds_s if dwell >= t)

    def _expire(self, wall: datetime) -> list[IncidentChange]:
        inc = self._open
        if inc is None or not self.due(wall):
            return []
        active = inc.active
        if not active:
            self._open = None
            return [self._emit(IncidentChangeKind.CLOSED, inc, inc.last_active_at, ())]
        # Too long and still going: close it here and continue it with the active members.
        closed = self._emit(IncidentChangeKind.CLOSED, inc, wall, ())
        first = min(active, key=lambda e: (e.started_at, e.id))
        nxt = _Open(
            incident_id(self.camera_id, self.epoch, first.id, previous_id=inc.id),
            wall,
            inc.id,
            0,
        )
        for member in sorted(active, key=lambda e: (e.started_at, e.id)):
            self._join(nxt, member, announce=False)
            nxt.crossed[member.id] = inc.crossed.get(member.id, 0)
        self._open = nxt
        return [closed, self._emit(IncidentChangeKind.OPENED, nxt, None, ())]

    def _emit(
        self,
        kind: IncidentChangeKind,
        inc: _Open,
        ended_at: datetime | None,
        material: tuple[MaterialChange, ...],
    ) -> IncidentChange:
        inc.revision += 1
        members = tuple(replace(m, path=list(m.path)) for m in inc.members.values())
        return IncidentChange(kind, self._snapshot(inc, ended_at), material, members)

    def _snapshot(self, inc: _Open, ended_at: datetime | None) -> Incident:
        members = list(inc.members.values())
        best = sorted(members, key=lambda m: (-m.score, m.id))[: self.config.key_frames]
        return Incident(
            id=inc.id,
            camera_id=self.camera_id,
            started_at=inc.started_at,
            last_seen_at=max(inc.last_seen_at, inc.started_at),
            ended_at=ended_at,
            members=tuple(inc.members),
            labels=tuple(inc.labels),
            key_frames=tuple(KeyFrame(m.id, m.label, m.score, m.best_at) for m in best),
            zones=tuple(inc.zones),
            previous_id=inc.previous_id,
            revision=inc.revision,
        )
