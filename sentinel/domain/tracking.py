"""A ByteTrack-style multi-object tracker (IoU association, Kalman prediction, re-association
of lost tracks by appearance).

Association runs per label in three stages. As in ByteTrack, high-score detections are matched
against every live track, then low-score detections against the confirmed tracks still
unmatched, so an object whose score dips (occlusion, blur) keeps its track instead of spawning a
new one. Third, high-score detections still unmatched are offered to the confirmed tracks still
unmatched by appearance (a colour descriptor, when the detections carry one): a walker hidden
for a second or two reappears too far from its prediction for IoU to link them, and would
otherwise start a new track (and a new event).

Each track runs a constant-velocity Kalman filter on its box centre, on stream time (so it
works at any analysed frame rate: ``dt`` is the time between analysed frames, 0.2 s at the
default 5 fps). Its noises are in box heights, so they fit near and far objects alike: the
detector's centre jitter (``MEASURE_STD``) and how fast a walker changes velocity
(``ACCEL_STD``). The prediction horizon and shift stay capped, so a lost track cannot fly off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.appearance import similarity
from sentinel.domain.boxes import box_iou
from sentinel.domain.types import Box, Detection

# Kalman noises, in box heights: the detector's centre jitter (one standard deviation) and the
# white-noise acceleration of the object per second (a walker turning or stopping).
MEASURE_STD = 0.05
ACCEL_STD = 1.0
# Weight of the newest descriptor in a track's appearance (a moving average over ~3 frames).
APPEARANCE_ALPHA = 0.3
# A detection overlapping another one by more than this IoU is partly someone else: its
# descriptor is not folded into its track's appearance.
CROWDED_IOU = 0.2
# Longest horizon a prediction extrapolates; beyond it a lost track waits where it was headed.
MAX_PREDICT_S = 1.0
# Largest predicted shift, in box sizes per axis: a walker hidden for most of a second still
# lands on its prediction, while a velocity spike from one bad box cannot fling the track away.
MAX_SHIFT_BOXES = 3.0


@dataclass(frozen=True)
class StationaryConfig:
    """When a tracked object counts as stationary, and how the camera rests on it.

    A confirmed track whose box stays near where it settled (IoU at least ``min_iou`` with that
    box, centre within ``max_shift`` of its smaller side) for ``after_s`` becomes stationary: a
    parked car, a person standing still. While every live track is stationary, the pipeline
    sends a frame to the detector only when motion touches one of their boxes (widened by
    ``margin``), when motion elsewhere passes the gate, or every ``recheck_s``; the stationary
    tracks are held (not aged out) on the frames in between, so their events stay open.

    Attributes:
        enabled: When false no track becomes stationary (every track forces detection).
        after_s: Stream seconds a track must stay put to become stationary.
        min_iou: Smallest IoU between a box and the box the track settled on that still
            counts as not moved.
        max_shift: Largest centre displacement from the settled box that still counts as not
            moved, as a fraction of that box's smaller side.
        recheck_s: Longest time a camera with only stationary objects goes without a detector
            call (it replaces the motion gate's ``max_idle_s`` while they are held).
        margin: Each side of a stationary box is widened by this fraction of its size (and at
            least one motion-mask pixel) before motion is looked for in it.
        touch_pixels: Changed motion-mask pixels in a widened stationary box that count as
            motion touching it (the mask is ~96 px wide).
    """

    enabled: bool = True
    after_s: float = 10.0
    min_iou: float = 0.7
    max_shift: float = 0.2
    recheck_s: float = 20.0
    margin: float = 0.15
    touch_pixels: int = 3

    def __post_init__(self) -> None:
        if self.after_s < 0.0:
            raise ValueError(f"after_s must be >= 0, but got {self.after_s}")
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], but got {self.min_iou}")
        if self.max_shift < 0.0:
            raise ValueError(f"max_shift must be >= 0, but got {self.max_shift}")
        if self.recheck_s <= 0.0:
            raise ValueError(f"recheck_s must be > 0, but got {self.recheck_s}")
        if self.margin < 0.0:
            raise ValueError(f"margin must be >= 0, but got {self.margin}")
        if self.touch_pixels < 1:
            raise ValueError(f"touch_pixels must be >= 1, but got {self.touch_pixels}")

    def still(self, box: Box, settled: Box) -> bool:
        """Whether ``box`` has not moved from ``settled``."""
        if box.iou(settled) < self.min_iou:
            return False
        (bx, by), (sx, sy) = box.center, settled.center
        side = max(min(settled.width, settled.height), 1.0)
        return bool(np.hypot(bx - sx, by - sy) <= self.max_shift * side)


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of the tracker.

    Attributes:
        high_score: Detections at or above this start tracks and match in the first stage.
        low_score: Detections in ``[low_score, high_score)`` only extend confirmed tracks.
        match_iou: Minimum IoU between a predicted track box and a detection to match.
        min_hits: Consecutive matches a tentative track needs to be confirmed.
        max_lost_s: Stream seconds a lost confirmed track stays matchable before removal.
        reid_similarity: Minimum appearance similarity (0..1) for a high-score detection to
            re-associate an unmatched confirmed track in the third stage; 1 disables it.
        reid_speed: Largest speed, in box heights per second, at which a lost object is
            searched for: a detection re-associates a track only if its centre lies within
            ``1 + reid_speed * seconds lost`` box heights of the track's prediction.
        stationary: When a track becomes stationary (see :class:`StationaryConfig`).
    """

    high_score: float = 0.5
    low_score: float = 0.15
    match_iou: float = 0.3
    min_hits: int = 3
    max_lost_s: float = 3.0
    reid_similarity: float = 0.85
    reid_speed: float = 1.0
    stationary: StationaryConfig = field(default_factory=StationaryConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError(
                "scores must satisfy 0 <= low_score <= high_score <= 1, but got "
                f"low_score={self.low_score}, high_score={self.high_score}"
            )
        if not 0.0 < self.match_iou <= 1.0:
            raise ValueError(f"match_iou must be in (0, 1], but got {self.match_iou}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, but got {self.min_hits}")
        if self.max_lost_s < 0.0:
            raise ValueError(f"max_lost_s must be >= 0, but got {self.max_lost_s}")
        if not 0.0 <= self.reid_similarity <= 1.0:
            raise ValueError(f"reid_similarity must be in [0, 1], but got {self.reid_similarity}")
        if self.reid_speed < 0.0:
            raise ValueError(f"reid_speed must be >= 0, but got {self.reid_speed}")


@dataclass
class Track:
    """One tracked object.

    Attributes:
        id: Tracker-unique id, counting from 1.
        label: Class label; a track only ever matches detections of its label.
        box: Box of the last matched detection, in frame pixels.
        score: Score of the last matched detection.
        best_score: Highest score matched so far.
        hits: Number of matches (consecutive while tentative, since a miss deletes it).
        first_t: Stream time of the first match, in seconds.
        last_t: Stream time of the last match, in seconds.
        confirmed: Whether the track reached ``min_hits``.
        velocity: Centre velocity ``(vx, vy)`` in pixels per second (Kalman estimate).
        lost: Whether the last update missed this (confirmed) track.
        center: Kalman estimate of the centre at ``last_t``; ``None`` means the box centre.
        covariance: Kalman covariance of (position, velocity), the same for both axes (their
            noises are equal); ``None`` until the second match initialises the filter.
        appearance: Moving average of the matched detections' descriptors, if they have one.
        reassociations: Times the track was re-associated by appearance.
        stationary: Whether the object has stayed put long enough to be stationary (see
            :class:`StationaryConfig`); it wakes (False) as soon as a match has moved.
        settled: The box the object has stayed near since ``settled_t``.
        settled_t: Stream time of the first match near ``settled``.
        held_t: Last stream time the track was held while stationary (a frame that skipped
            the detector because nothing touched it); ageing counts from the later of this
            and ``last_t``.
    """

    id: int
    label: str
    box: Box
    score: float
    best_score: float
    hits: int
    first_t: float
    last_t: float
    confirmed: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)
    lost: bool = False
    center: tuple[float, float] | None = None
    covariance: NDArray[np.float64] | None = field(default=None, repr=False)
    appearance: NDArray[np.float32] | None = field(default=None, repr=False)
    reassociations: int = 0
    stationary: bool = False
    settled: Box | None = None
    settled_t: float = 0.0
    held_t: float = float("-inf")

    @property
    def seen_t(self) -> float:
        """Stream time the object was last known to be there (matched, or held)."""
        return max(self.last_t, self.held_t)

    def predicted(self, t: float) -> Box:
        """The box expected at stream time ``t`` under constant velocity.

        The box has the size of the last match, centred on the Kalman estimate moved on by
        the velocity. The horizon is capped at one second and the shift at three box sizes per
        axis, so a lost or jittery track never predicts a box far from where it was last seen.

        Args:
            t: Stream time in seconds.

        Returns:
            The predicted box.
        """
        dt = min(max(t - self.last_t, 0.0), MAX_PREDICT_S)
        bx, by = self.box.center
        cx, cy = self.center if self.center is not None else (bx, by)
        vx, vy = self.velocity
        max_dx, max_dy = MAX_SHIFT_BOXES * self.box.width, MAX_SHIFT_BOXES * self.box.height
        dx = float(np.clip(cx - bx + vx * dt, -max_dx, max_dx))
        dy = float(np.clip(cy - by + vy * dt, -max_dy, max_dy))
        if dx == 0.0 and dy == 0.0:
            return self.box
        return self.box.shifted(dx, dy)

    def _observe(self, detection: Detection, t: float, *, clean: bool = True) -> None:
        """Fold a matched detection in; ``clean`` says its descriptor is not crowded."""
        dt = t - self.last_t
        if dt > 0.0:
            self._filter(detection.box, dt)
        self.box = detection.box
        self.score = detection.score
        self.best_score = max(self.best_score, detection.score)
        self.hits += 1
        self.last_t = t
        self.lost = False
        if clean and detection.appearance is not None:
            if self.appearance is None:
                self.appearance = detection.appearance
            else:
                mixed = self.appearance + APPEARANCE_ALPHA * (
                    detection.appearance - self.appearance
                )
                self.appearance = mixed.astype(np.float32)

    def _filter(self, box: Box, dt: float) -> None:
        """Kalman predict (by ``dt`` seconds) and update with the centre of ``box``."""
        (nx, ny), height = box.center, max(box.height, self.box.height, 1.0)
        measure_var = (MEASURE_STD * height) ** 2
        if self.covariance is None:
            # Two-point initialisation: position from this match, velocity from the last two.
            ox, oy = self.center if self.center is not None else self.box.center
            self.velocity = ((nx - ox) / dt, (ny - oy) / dt)
            self.center = (nx, ny)
            self.covariance = np.array(
                [
                    [measure_var, measure_var / dt],
                    [measure_var / dt, 2.0 * measure_var / dt**2],
                ]
            )
            return
        cx, cy = self.center if self.center is not None else self.box.center
        vx, vy = self.velocity
        transition = np.array([[1.0, dt], [0.0, 1.0]])
        accel_var = (ACCEL_STD * height) ** 2
        noise = accel_var * np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
        cov = transition @ self.covariance @ transition.T + noise
        gain = cov[:, 0] / (cov[0, 0] + measure_var)
        px, py = cx + vx * dt, cy + vy * dt
        rx, ry = nx - px, ny - py
        self.center = (px + gain[0] * rx, py + gain[0] * ry)
        self.velocity = (vx + gain[1] * rx, vy + gain[1] * ry)
        self.covariance = cov - np.outer(gain, cov[0, :])


@dataclass
class TrackerUpdate:
    """What one :meth:`Tracker.update` (or :meth:`Tracker.age_out`) changed.

    Attributes:
        matched: Tracks matched in this update, tentative and confirmed (including
            ``confirmed_now``).
        confirmed_now: Tracks that became confirmed in this update.
        removed: Confirmed tracks removed because they were lost longer than ``max_lost_s``.
    """

    matched: list[Track] = field(default_factory=list)
    confirmed_now: list[Track] = field(default_factory=list)
    removed: list[Track] = field(default_factory=list)


class Tracker:
    """Tracks detections of one camera over stream time.

    Args:
        config: Tracker settings.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def active(self) -> list[Track]:
        """Live tracks (tentative, confirmed and lost-but-matchable), by id."""
        return list(self._tracks)

    @property
    def has_confirmed(self) -> bool:
        """Whether any live track is confirmed."""
        return any(track.confirmed for track in self._tracks)

    def update(self, detections: Sequence[Detection], t: float) -> TrackerUpdate:
        """Associate one frame's detections with the live tracks.

        Args:
            detections: Detections of the frame at stream time ``t``.
            t: Stream time of the frame in seconds (non-decreasing between calls).

        Returns:
            The matched, newly confirmed and removed tracks.
        """
        result = TrackerUpdate(removed=self.age_out(t))
        cfg = self.config
        labels = sorted({d.label for d in detections} | {tr.label for tr in self._tracks})
        survivors: list[Track] = []
        for label in labels:
            tracks = [tr for tr in self._tracks if tr.label == label]
            dets = [d for d in detections if d.label == label and d.score >= cfg.low_score]
            high = [d for d in dets if d.score >= cfg.high_score]
            low = [d for d in dets if d.score < cfg.high_score]

            pairs, free_tracks, free_high = self._associate(tracks, high, t)
            second = [tr for tr in free_tracks if tr.confirmed]
            pairs2, free_confirmed, _ = self._associate(second, low, t)
            pairs3, free_high = self._reassociate(free_confirmed, free_high, t)
            crowded = _crowded(dets)
            matched_ids: set[int] = set()
            for track, det in pairs + pairs2 + pairs3:
                track._observe(det, t, clean=id(det) not in crowded)
                matched_ids.add(track.id)
                if not track.confirmed and track.hits >= cfg.min_hits:
                    track.confirmed = True
                    result.confirmed_now.append(track)
                self._settle(track, t)
                result.matched.append(track)
            for track, _ in pairs3:
                track.reassociations += 1

            for track in tracks:
                if track.id in matched_ids:
                    survivors.append(track)
                elif track.confirmed:
                    track.lost = True
                    survivors.append(track)
                # A tentative track that misses a frame is dropped: it was probably noise.

            for det in free_high:
                track = Track(
                    id=self._next_id,
                    label=label,
                    box=det.box,
                    score=det.score,
                    best_score=det.score,
                    hits=1,
                    first_t=t,
                    last_t=t,
                    appearance=det.appearance if id(det) not in crowded else None,
                    settled=det.box,
                    settled_t=t,
                )
                self._next_id += 1
                if cfg.min_hits <= 1:
                    track.confirmed = True
                    result.confirmed_now.append(track)
                result.matched.append(track)
                survivors.append(track)

        self._tracks = sorted(survivors, key=lambda tr: tr.id)
        return result

    def hold(self, t: float) -> list[Track]:
        """Vouch for the stationary tracks at stream time ``t``: a frame skipped the detector
        because no motion touched them, so they are taken to be still there (not aged out).

        Lost tracks are not held: an object a detector call missed must be found again.

        Args:
            t: Stream time in seconds.

        Returns:
            The tracks held.
        """
        held = [tr for tr in self._tracks if tr.stationary and not tr.lost]
        for track in held:
            track.held_t = max(track.held_t, t)
        return held

    def age_out(self, t: float) -> list[Track]:
        """Drop tracks not seen for more than ``max_lost_s`` at stream time ``t`` (seen:
        matched, or held by :meth:`hold`).

        Used directly when frames pass without a detector call. Tentative tracks that old are
        dropped silently.

        Args:
            t: Stream time in seconds.

        Returns:
            The confirmed tracks removed.
        """
        removed: list[Track] = []
        kept: list[Track] = []
        for track in self._tracks:
            if t - track.seen_t > self.config.max_lost_s:
                if track.confirmed:
                    track.lost = True
                    removed.append(track)
            else:
                kept.append(track)
        self._tracks = kept
        return removed

    def _settle(self, track: Track, t: float) -> None:
        """After a match: a confirmed track near its settled box for ``after_s`` becomes
        stationary; one that moved settles again where it is now (and wakes)."""
        cfg = self.config.stationary
        if not cfg.enabled:
            return
        if track.settled is not None and cfg.still(track.box, track.settled):
            if track.confirmed and t - track.settled_t >= cfg.after_s:
                track.stationary = True
            return
        track.settled, track.settled_t = track.box, t
        track.stationary = False

    def _associate(
        self, tracks: list[Track], detections: list[Detection], t: float
    ) -> tuple[list[tuple[Track, Detection]], list[Track], list[Detection]]:
        """Greedy matching by highest IoU of predicted box vs detection, above ``match_iou``."""
        if not tracks or not detections:
            return [], list(tracks), list(detections)
        predicted = np.array([tr.predicted(t).as_list() for tr in tracks], dtype=np.float64)
        boxes = np.array([d.box.as_list() for d in detections], dtype=np.float64)
        iou = box_iou(predicted, boxes)
        # Ties (rare) go to the higher-scoring detection, then to the older track.
        det_scores = np.array([d.score for d in detections], dtype=np.float64)
        order = np.lexsort((-np.broadcast_to(det_scores, iou.shape).ravel(), -iou.ravel()))
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        pairs: list[tuple[Track, Detection]] = []
        n_dets = len(detections)
        for flat in order:
            ti, di = divmod(int(flat), n_dets)
            if iou[ti, di] < self.config.match_iou:
                break
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            pairs.append((tracks[ti], detections[di]))
        free_tracks = [tr for i, tr in enumerate(tracks) if i not in used_tracks]
        free_dets = [d for i, d in enumerate(detections) if i not in used_dets]
        return pairs, free_tracks, free_dets

    def _reassociate(
        self, tracks: list[Track], detections: list[Detection], t: float
    ) -> tuple[list[tuple[Track, Detection]], list[Detection]]:
        """Greedy matching of unmatched confirmed tracks by appearance similarity.

        A pair qualifies when both have a descriptor, their similarity is at least
        ``reid_similarity`` and the detection's centre lies within ``1 + reid_speed * lost``
        box heights of the track's prediction (``lost``: seconds since its last match).

        Returns:
            The pairs and the detections left unmatched.
        """
        cfg = self.config
        if cfg.reid_similarity >= 1.0:
            return [], list(detections)
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(tracks):
            if track.appearance is None:
                continue
            (px, py), height = track.predicted(t).center, track.box.height
            reach = (1.0 + cfg.reid_speed * max(t - track.last_t, 0.0)) * height
            for di, det in enumerate(detections):
                if det.appearance is None:
                    continue
                dx, dy = det.box.center
                if np.hypot(dx - px, dy - py) > reach:
                    continue
                sim = similarity(track.appearance, det.appearance)
                if sim >= cfg.reid_similarity:
                    candidates.append((sim, ti, di))
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        pairs: list[tuple[Track, Detection]] = []
        for _, ti, di in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            pairs.append((tracks[ti], detections[di]))
        return pairs, [d for i, d in enumerate(detections) if i not in used_dets]


def _crowded(detections: list[Detection]) -> set[int]:
    """``id()`` of the detections overlapping another one by more than ``CROWDED_IOU``."""
    if len(detections) < 2:
        return set()
    boxes = np.array([d.box.as_list() for d in detections], dtype=np.float64)
    iou = box_iou(boxes, boxes)
    np.fill_diagonal(iou, 0.0)
    return {id(d) for d, row in zip(detections, iou, strict=True) if row.max() > CROWDED_IOU}
