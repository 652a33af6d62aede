"""The per-camera frame pipeline: motion gate, filters, tracker, event builder and zones.

The camera actor owns one :class:`FramePipeline` and drives it frame by frame: it asks
:meth:`FramePipeline.wants_detection`, then reports either the detector's output
(:meth:`FramePipeline.on_detections`) or that the frame was skipped
(:meth:`FramePipeline.on_skipped`), and persists the returned changes. Both calls also settle
the frame's scene events (zones and lines, see :mod:`sentinel.domain.zones`), which
:attr:`FramePipeline.scene_events` holds until the next frame, for the rules.

Detections are filtered before tracking: by label, by score, then by the object masks (see
:mod:`sentinel.domain.masks`); motion masks live in the gate's :class:`MotionConfig`.

Stationary objects (see :class:`StationaryConfig`): tracking normally forces a detector call on
every frame, so a camera that sees a parked car would never rest. Once every live track is
stationary the pipeline rests: a frame goes to the detector only when the gate's motion mask
touches a stationary box, when motion elsewhere passes the gate, or when ``recheck_s`` has
passed since the last call; the frames in between hold the stationary tracks (their events stay
open). A re-check that misses an object makes its track lost, which forces detection again
until it is found or closed as usual; a match that has moved wakes the track at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.appearance import appearance
from sentinel.domain.events import EventBuilder, EventConfig
from sentinel.domain.masks import ObjectMask
from sentinel.domain.motion import MotionConfig, MotionDecision, MotionGate
from sentinel.domain.scene import SceneEvent, SceneEventKind
from sentinel.domain.tracking import (
    StationaryConfig,
    Track,
    Tracker,
    TrackerConfig,
    TrackerUpdate,
)
from sentinel.domain.types import Box, Detection, EventChange, EventState
from sentinel.domain.zones import Line, SceneObject, Zone, ZoneTracker


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one camera's pipeline.

    Attributes:
        motion: Motion gate settings.
        tracker: Tracker settings; its ``max_lost_s`` is replaced by ``events.close_after_s``.
        events: Event settings.
        labels: Labels kept (allow-list); ``None`` keeps every label.
        min_score: Detections scoring below this are dropped before tracking.
        zones: The camera's zones (unique names).
        lines: The camera's lines (unique names).
        object_masks: Detections standing in one of these are dropped before tracking.
    """

    motion: MotionConfig = field(default_factory=MotionConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    events: EventConfig = field(default_factory=EventConfig)
    labels: frozenset[str] | None = None
    min_score: float = 0.15
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()
    object_masks: tuple[ObjectMask, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], but got {self.min_score}")

    @property
    def needs_frame(self) -> bool:
        """Whether the pipeline must see the frame (zones, lines or object masks)."""
        return bool(self.zones or self.lines or self.object_masks)


class FramePipeline:
    """Motion gate → filters → tracker → events and zones for one camera.

    Frames are identified by their stream time ``ts`` (seconds, increasing); a frame whose
    ``ts`` is not after the last processed one is a replay and changes nothing, which keeps
    event writes idempotent when frames are delivered twice. ``wall`` is the frame's
    timezone-aware wall-clock time.

    Args:
        camera_id: The camera.
        epoch: This pipeline's lifetime in the camera's stream (see :class:`EventBuilder`).
        config: Pipeline settings.
    """

    def __init__(self, camera_id: str, epoch: str, config: PipelineConfig | None = None) -> None:
        self.camera_id = camera_id
        self.config = config if config is not None else PipelineConfig()
        self._gate = MotionGate(self.config.motion)
        # An event ends when its track is removed, so both must agree on how long "gone" is.
        self._tracker = Tracker(
            replace(self.config.tracker, max_lost_s=self.config.events.close_after_s)
        )
        self._events = EventBuilder(camera_id, epoch, self.config.events)
        self._zones = ZoneTracker(camera_id, self.config.zones, self.config.lines)
        self._last_ts: float | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the last frame
        self._scene_events: tuple[SceneEvent, ...] = ()
        self._resting: list[float] = []  # frames skipped while holding stationary tracks

    @property
    def stationary(self) -> StationaryConfig:
        """The stationary-object settings (the tracker's)."""
        return self.config.tracker.stationary

    @property
    def scene_events(self) -> tuple[SceneEvent, ...]:
        """The scene events of the last frame processed (:meth:`on_detections`,
        :meth:`on_skipped` or :meth:`close_all`); only ``SEEN`` without zones and lines,
        empty for a replayed frame."""
        return self._scene_events

    def zone_counts(self, zone: str) -> dict[str, int]:
        """Objects per label in ``zone`` now.

        Raises:
            KeyError: If the camera has no such zone.
        """
        return self._zones.counts(zone)

    @property
    def tracking(self) -> bool:
        """Whether any track is live (tentative, confirmed or lost but still matchable)."""
        return bool(self._tracker.active)

    def active_tracks(self) -> list[Track]:
        """The live tracks, by id."""
        return self._tracker.active

    @property
    def has_open_events(self) -> bool:
        """Whether any event is open: cheap enough for every frame."""
        return self._events.has_open_events

    def open_events(self) -> list[EventState]:
        """Copies of the events currently open."""
        return self._events.open_events

    def wants_detection(
        self, gray_small: NDArray[np.uint8], ts: float, size: tuple[int, int] | None = None
    ) -> MotionDecision:
        """Feed the motion gate and say whether this frame should go to the detector.

        Detection is forced while something is tracked, unless every live track is stationary
        (see the module docstring): then only motion touching their boxes, motion elsewhere or
        the re-check interval sends the frame.

        Args:
            gray_small: The frame downscaled to a small ``(H, W)`` uint8 grayscale image.
            ts: Stream time of the frame in seconds.
            size: ``(width, height)`` of the full frame, in which the tracks' boxes are;
                defaults to the size of the last frame given to :meth:`on_detections`. Without
                either the pipeline never rests (it cannot place the boxes on the mask).

        Returns:
            The gate's decision.
        """
        tracks = self._tracker.active
        size = size if size is not None else self._size
        held = [t for t in tracks if t.stationary and not t.lost]
        if not tracks or len(held) < len(tracks) or size is None:
            return self._gate.check(gray_small, ts, tracking=bool(tracks))
        return self._rest(gray_small, ts, held, size)

    def _rest(
        self, gray: NDArray[np.uint8], ts: float, held: list[Track], size: tuple[int, int]
    ) -> MotionDecision:
        """The decision while every live track is stationary."""
        cfg = self.stationary
        decision = self._gate.check(
            gray, ts, tracking=False, idle_s=cfg.recheck_s, idle_reason="recheck"
        )
        if decision.mask is None or decision.reason == "gate off":
            return decision  # no background yet (or no gate): the detector runs anyway
        if any(self._touched(decision.mask, t.box, size) for t in held):
            return self._gate.force(decision, ts, "touched")
        if decision.detect:
            return decision  # motion elsewhere, or the re-check is due
        self._resting.append(ts)
        return replace(decision, reason="stationary")

    def _touched(self, mask: NDArray[np.bool_], box: Box, size: tuple[int, int]) -> bool:
        """Whether the gate's mask has motion in ``box`` (frame pixels, widened by the margin)."""
        cfg = self.stationary
        height, width = mask.shape
        sx, sy = width / max(size[0], 1), height / max(size[1], 1)
        mx = max(cfg.margin * box.width * sx, 1.0)
        my = max(cfg.margin * box.height * sy, 1.0)
        x1 = max(int(np.floor(box.x1 * sx - mx)), 0)
        y1 = max(int(np.floor(box.y1 * sy - my)), 0)
        x2 = min(int(np.ceil(box.x2 * sx + mx)), width)
        y2 = min(int(np.ceil(box.y2 * sy + my)), height)
        if x2 <= x1 or y2 <= y1:
            return False
        return int(np.count_nonzero(mask[y1:y2, x1:x2])) >= cfg.touch_pixels

    def on_detections(
        self,
        detections: Sequence[Detection],
        ts: float,
        wall: datetime,
        frame: NDArray[np.uint8] | None = None,
    ) -> list[EventChange]:
        """Track one frame's detections and return the event changes they cause.

        The frame's scene events are then in :attr:`scene_events`.

        Args:
            detections: The detector's output for the frame, in frame pixels.
            ts: Stream time of the frame in seconds.
            wall: Wall-clock time of the frame (timezone-aware).
            frame: The ``(H, W, 3)`` RGB frame the detections come from; when given, each kept
                detection gets an appearance descriptor, with which the tracker re-associates
                lost tracks (a few hundred pixels read per box). Needed with zones, lines or
                object masks, which are placed on the frame by its size.

        Returns:
            Event changes to persist; empty for a replayed frame.

        Raises:
            ValueError: If ``wall`` is naive, or ``frame`` is missing with zones, lines or
                object masks.
        """
        size = (int(frame.shape[1]), int(frame.shape[0])) if frame is not None else None
        if size is None and self.config.needs_frame:
            raise ValueError("the frame is needed with zones, lines or object masks")
        if not self._accept(ts, wall):
            return []
        self._size = size
        kept = [d for d in detections if self._keep(d)]
        if frame is not None:
            kept = [replace(d, appearance=appearance(frame, d.box)) for d in kept]
        update = self._tracker.update(kept, ts)
        changes = self._events.on_update(update, ts, wall)
        return changes + self._scene(ts, wall)

    def on_skipped(self, ts: float, wall: datetime) -> list[EventChange]:
        """Account for a frame that passed without a detector call: age out lost tracks.

        Args:
            ts: Stream time of the frame in seconds.
            wall: Wall-clock time of the frame (timezone-aware).

        Returns:
            Event changes to persist (closings); empty for a replayed frame.

        Raises:
            ValueError: If ``wall`` is naive.
        """
        if not self._accept(ts, wall):
            return []
        if ts in self._resting:  # skipped because nothing touched the stationary objects
            self._tracker.hold(ts)
        update = TrackerUpdate(removed=self._tracker.age_out(ts))
        changes = self._events.on_update(update, ts, wall)
        return changes + self._scene(ts, wall)

    def adopt(self, events: Sequence[EventState], wall: datetime) -> None:
        """Take over the events the store still has open for this camera (after a restart).

        Args:
            events: Open events from the store; other cameras' events are ignored.
            wall: Current wall-clock time (timezone-aware).

        Raises:
            ValueError: If ``wall`` is naive.
        """
        _check_wall(wall)
        self._events.adopt(events, wall)

    def close_all(self, wall: datetime) -> list[EventChange]:
        """Close every open event (clean stop).

        Args:
            wall: Wall-clock time of the stop (timezone-aware).

        Returns:
            One CLOSED change per open event; the zones' members leave them
            (:attr:`scene_events` holds their ``EXIT`` events).

        Raises:
            ValueError: If ``wall`` is naive.
        """
        _check_wall(wall)
        self._scene_events = tuple(self._zones.forget_all(wall))
        return self._events.close_all(wall)

    def _accept(self, ts: float, wall: datetime) -> bool:
        _check_wall(wall)
        self._scene_events = ()
        if self._last_ts is not None and ts <= self._last_ts:
            return False
        self._last_ts = ts
        # Decisions run up to a frame ahead of the frames processed: keep the newer ones.
        self._resting = [t for t in self._resting if t >= ts]
        return True

    def _keep(self, detection: Detection) -> bool:
        labels = self.config.labels
        if labels is not None and detection.label not in labels:
            return False
        if detection.score < self.config.min_score:
            return False
        if self.config.object_masks and self._size is not None:
            width, height = self._size
            box, label = detection.box, detection.label
            return not any(m.hides(label, box, width, height) for m in self.config.object_masks)
        return True

    def _scene(self, ts: float, wall: datetime) -> list[EventChange]:
        """Feed the zone tracker this frame's confirmed tracks (matched or held now: visible,
        so a parked car or a person standing still keeps its ``SEEN`` and ``DWELL``). Without
        zones or lines it still reports ``SEEN`` (rules on "a person in view" need no zone).
        Returns the changes of events that are in a zone for the first time."""
        objects = [
            SceneObject(
                track_id=t.id,
                label=t.label,
                score=t.score,
                box=t.box,
                event_id=self._events.event_id_of(t.id),
                # Held stationary tracks are vouched for: in view, at their last box.
                visible=(t.last_t == ts or t.held_t == ts) and not t.lost,
            )
            for t in self._tracker.active
            if t.confirmed
        ]
        # on_detections refuses a frame without a size when zones or lines exist, and a skipped
        # frame's only visible objects are held ones, tracked on such a frame before: the
        # fallback size is never used to place one.
        width, height = self._size if self._size is not None else (1, 1)
        self._scene_events = tuple(self._zones.update(objects, width, height, wall))
        changes = []
        for event in self._scene_events:
            if event.kind in _IN_ZONE and event.zone is not None:
                change = self._events.note_zone(event.track_id, event.zone)
                if change is not None:
                    changes.append(change)
        return changes


_IN_ZONE = frozenset({SceneEventKind.ENTER, SceneEventKind.DWELL})


def _check_wall(wall: datetime) -> None:
    if wall.tzinfo is None or wall.utcoffset() is None:
        raise ValueError(f"wall must be a timezone-aware datetime, but got naive {wall!r}")
