"""Turns track lifecycles into events: one event per object visit, not per track.

A confirmed track opens an event; its matches update it; its removal (lost longer than
``close_after_s``) closes it. Trackers lose objects, so a new track that reappears where an
event's object was last seen continues that event instead of opening another: within
``rejoin_s`` for moving objects, within ``stationary_rejoin_s`` for objects that never moved (a
parked car the detector drops for minutes must not open an event each time it comes back).

Event fields as this module fills them: ``score`` is the best score so far and ``best_at`` the
wall time of that frame (the frame an ``EventChange`` with ``new_best=True`` came from, whose
snapshot should be written); ``box`` is the latest box, which equals the best box on a
``new_best`` change; ``track_id`` is the track that opened the event, the one its id derives
from, even when a later track continues it.

Time: the tracker runs on stream seconds, events on wall-clock datetimes. Every call passes
both for the current frame, and a stream time ``s`` maps to ``wall - (ts - s)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sentinel.domain.tracking import Track, TrackerUpdate
from sentinel.domain.types import EventChange, EventChangeKind, EventState, event_id


@dataclass(frozen=True)
class EventConfig:
    """Settings of event building.

    Attributes:
        close_after_s: An event ends when its object has been gone this long (also the
            tracker's ``max_lost_s``).
        rejoin_s: A new track overlapping the last box of an event that closed less than this
            ago continues that event.
        stationary_rejoin_s: The same window for events whose object stayed put.
        stationary_px: An object whose centre never moved farther than this from where it was
            first seen is stationary.
        rejoin_iou: Minimum IoU between a new track and an event's last box to continue it.
        update_every_s: Minimum wall seconds between two UPDATED changes of a tracked event,
            unless its best score improved by ``best_improvement`` (bounds database writes).
        best_improvement: Score gain that makes a frame the new best right away.
        path_points: Maximum centre points kept in the event path (subsampled when full).
    """

    close_after_s: float = 5.0
    rejoin_s: float = 3.0
    stationary_rejoin_s: float = 600.0
    stationary_px: float = 20.0
    rejoin_iou: float = 0.5
    update_every_s: float = 5.0
    best_improvement: float = 0.05
    path_points: int = 64

    def __post_init__(self) -> None:
        for name in ("close_after_s", "rejoin_s", "stationary_rejoin_s", "stationary_px"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0, but got {getattr(self, name)}")
        if self.update_every_s < 0.0 or self.best_improvement < 0.0:
            raise ValueError(
                "update_every_s and best_improvement must be >= 0, but got "
                f"{self.update_every_s} and {self.best_improvement}"
            )
        if not 0.0 < self.rejoin_iou <= 1.0:
            raise ValueError(f"rejoin_iou must be in (0, 1], but got {self.rejoin_iou}")
        if self.path_points < 2:
            raise ValueError(f"path_points must be >= 2, but got {self.path_points}")


@dataclass
class _Event:
    """Builder-side bookkeeping around one event's state."""

    state: EventState
    origin: tuple[float, float]
    travel: float
    last_emit: datetime
    track_id: int | None = None
    stride: int = 1
    seen: int = 0
    closed_at: datetime | None = None
    adopted_at: datetime | None = None

    def note_center(self, center: tuple[float, float], path_points: int) -> None:
        self.travel = max(
            self.travel, math.hypot(center[0] - self.origin[0], center[1] - self.origin[1])
        )
        self.seen += 1
        path = self.state.path
        if self.seen % self.stride == 0:
            path.append(center)
        if len(path) > path_points:
            path[:] = path[::2]
            self.stride *= 2


class EventBuilder:
    """Builds the events of one camera from tracker updates.

    Args:
        camera_id: The camera the events belong to.
        epoch: Identifies this tracker's lifetime in the camera's stream (e.g. the actor's start
            time); track ids restart at 1 with each tracker, so a new epoch keeps event ids
            unique while the same epoch and track always give the same id.
        config: Event settings.
    """

    def __init__(self, camera_id: str, epoch: str, config: EventConfig | None = None) -> None:
        self.camera_id = camera_id
        self.epoch = epoch
        self.config = config if config is not None else EventConfig()
        self._open: dict[int, _Event] = {}
        self._dormant: list[_Event] = []
        self._closed: list[_Event] = []

    @property
    def has_open_events(self) -> bool:
        """Whether any event is open (tracked, or adopted and not yet resolved); no copies."""
        return bool(self._open or self._dormant)

    def event_id_of(self, track_id: int) -> str | None:
        """The id of the open event ``track_id`` belongs to, if any."""
        event = self._open.get(track_id)
        return event.state.id if event is not None else None

    @property
    def open_events(self) -> list[EventState]:
        """Copies of the events currently open (tracked or adopted and not yet resolved)."""
        return [_copy(ev.state) for ev in [*self._open.values(), *self._dormant]]

    def on_update(self, update: TrackerUpdate, ts: float, wall: datetime) -> list[EventChange]:
        """Apply one tracker update.

        Args:
            update: The tracker's result for the frame.
            ts: Stream time of the frame in seconds (the tracker's clock).
            wall: Wall-clock time of the same frame.

        Returns:
            The changes to persist, in order.
        """
        cfg = self.config
        changes: list[EventChange] = []

        for ev in list(self._dormant):
            if ev.adopted_at is None or _seconds(wall - ev.adopted_at) >= cfg.close_after_s:
                self._dormant.remove(ev)
                changes.append(self._close(ev, wall))
        for track in update.removed:
            removed = self._open.pop(track.id, None)
            if removed is not None:
                changes.append(self._close(removed, wall))
        self._closed = [
            ev
            for ev in self._closed
            if ev.closed_at is not None and _seconds(wall - ev.closed_at) < self._rejoin_window(ev)
        ]

        matched_ids = {track.id for track in update.matched}
        started: set[int] = set()
        for track in sorted(update.confirmed_now, key=lambda tr: -tr.score):
            started.add(track.id)
            event = self._rejoin_target(track, matched_ids)
            if event is None:
                changes.append(self._open_event(track, ts, wall))
                continue
            event.state.ended_at = None
            event.closed_at = event.adopted_at = None
            event.track_id = track.id
            self._open[track.id] = event
            event.state.hits += track.hits - 1  # the tentative hits before confirmation
            change = self._observe(event, track, wall, force=True)
            if change is not None:  # always, since forced
                changes.append(change)
        for track in update.matched:
            tracked = self._open.get(track.id)
            if track.id in started or tracked is None:
                continue
            change = self._observe(tracked, track, wall, force=False)
            if change is not None:
                changes.append(change)
        return changes

    def note_zone(self, track_id: int, zone: str) -> EventChange | None:
        """The track's event was in ``zone``: an UPDATED change when that is new to the event
        (so the stored event says where it went), else None (also for a track without one)."""
        event = self._open.get(track_id)
        if event is None or zone in event.state.zones:
            return None
        event.state.zones.append(zone)
        return EventChange(EventChangeKind.UPDATED, _copy(event.state))

    def adopt(self, events: Sequence[EventState], now: datetime) -> None:
        """Take over events the store still has open for this camera (after a restart).

        Each one waits, dormant, for a new track of its label overlapping its box to continue
        it; one left unclaimed ``close_after_s`` after ``now`` is closed at its
        ``last_seen_at``. Events of other cameras, already-ended ones and ones already known
        are ignored.

        Args:
            events: Open events from the store.
            now: Wall-clock time of the adoption.
        """
        known = {ev.state.id for ev in [*self._open.values(), *self._dormant, *self._closed]}
        for state in events:
            if state.camera_id != self.camera_id or state.ended_at is not None:
                continue
            if state.id in known:
                continue
            path = list(state.path)
            origin = path[0] if path else state.box.center
            travel = max((math.hypot(x - origin[0], y - origin[1]) for x, y in path), default=0.0)
            self._dormant.append(
                _Event(
                    state=replace(state, path=path),
                    origin=origin,
                    travel=travel,
                    last_emit=now,
                    seen=len(path),
                    adopted_at=now,
                )
            )
            known.add(state.id)

    def close_all(self, wall: datetime) -> list[EventChange]:
        """Close every open and adopted event (clean stop).

        Args:
            wall: Wall-clock time of the stop.

        Returns:
            One CLOSED change per event.
        """
        changes = [self._close(ev, wall) for ev in [*self._open.values(), *self._dormant]]
        self._open.clear()
        self._dormant.clear()
        return changes

    def _rejoin_window(self, event: _Event) -> float:
        if event.travel < self.config.stationary_px:
            return self.config.stationary_rejoin_s
        return self.config.rejoin_s

    def _rejoin_target(self, track: Track, matched_ids: set[int]) -> _Event | None:
        """The event a newly confirmed track continues: best IoU among the candidates."""
        candidates = [*self._dormant, *self._closed]
        # Open events whose track missed this frame: the object may have been picked up by a
        # new track (e.g. it stopped while its lost track's prediction drifted on).
        candidates += [
            ev for tid, ev in self._open.items() if tid not in matched_ids and tid != track.id
        ]
        best: _Event | None = None
        best_iou = self.config.rejoin_iou
        for event in candidates:
            if event.state.label != track.label:
                continue
            iou = track.box.iou(event.state.box)
            if iou >= best_iou:
                best, best_iou = event, iou
        if best is None:
            return None
        if best in self._dormant:
            self._dormant.remove(best)
        elif best in self._closed:
            self._closed.remove(best)
        else:
            self._open = {tid: ev for tid, ev in self._open.items() if ev is not best}
        return best

    def _open_event(self, track: Track, ts: float, wall: datetime) -> EventChange:
        started = wall - timedelta(seconds=max(0.0, ts - track.first_t))
        center = track.box.center
        state = EventState(
            id=event_id(self.camera_id, self.epoch, track.id),
            camera_id=self.camera_id,
            label=track.label,
            track_id=track.id,
            started_at=started,
            last_seen_at=wall,
            score=track.score,
            box=track.box,
            best_at=wall,
            hits=track.hits,
            path=[center],
        )
        event = _Event(state=state, origin=center, travel=0.0, last_emit=wall, track_id=track.id)
        event.seen = 1
        self._open[track.id] = event
        return EventChange(EventChangeKind.OPENED, _copy(state), new_best=True)

    def _observe(
        self, event: _Event, track: Track, wall: datetime, force: bool
    ) -> EventChange | None:
        """Fold the track's latest match into the event; return a change if one is due."""
        state = event.state
        state.box = track.box
        state.last_seen_at = wall
        state.hits += 1
        event.note_center(track.box.center, self.config.path_points)

        due = force or _seconds(wall - event.last_emit) >= self.config.update_every_s
        # The best frame moves only when a change is emitted, so score, best_at and the
        # snapshot written for new_best always describe the same frame.
        new_best = track.score > state.score and (
            due or track.score >= state.score + self.config.best_improvement
        )
        if new_best:
            state.score = track.score
            state.best_at = wall
        if not (due or new_best):
            return None
        event.last_emit = wall
        return EventChange(EventChangeKind.UPDATED, _copy(state), new_best=new_best)

    def _close(self, event: _Event, wall: datetime) -> EventChange:
        event.state.ended_at = event.state.last_seen_at
        event.closed_at = wall
        event.adopted_at = None
        event.track_id = None
        self._closed.append(event)
        return EventChange(EventChangeKind.CLOSED, _copy(event.state))


def _copy(state: EventState) -> EventState:
    """A snapshot of ``state`` the caller may keep while the builder goes on mutating its own."""
    return replace(state, path=list(state.path), zones=list(state.zones))


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()
