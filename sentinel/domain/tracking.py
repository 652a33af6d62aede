"""A ByteTrack-style multi-object tracker (IoU association, constant-velocity prediction).

Association runs per label in two stages, as in ByteTrack: high-score detections are matched
against every live track, then low-score detections against the confirmed tracks still
unmatched, so an object whose score dips (occlusion, blur) keeps its track instead of spawning a
new one. There is no Kalman filter: a track predicts its box from an exponential moving average
of its centre velocity, with the prediction horizon capped so a lost track cannot fly off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sentinel.domain.boxes import box_iou
from sentinel.domain.types import Box, Detection

# Weight of the newest displacement in the velocity EMA: smooths detector jitter while still
# following a person who changes direction within a second or two.
VELOCITY_ALPHA = 0.4
# Longest horizon a prediction extrapolates; beyond it a lost track waits where it was headed.
MAX_PREDICT_S = 1.0
# Largest predicted shift, in box sizes per axis: a walker hidden for most of a second still
# lands on its prediction, while a velocity spike from one bad box cannot fling the track away.
MAX_SHIFT_BOXES = 3.0


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of the tracker.

    Attributes:
        high_score: Detections at or above this start tracks and match in the first stage.
        low_score: Detections in ``[low_score, high_score)`` only extend confirmed tracks.
        match_iou: Minimum IoU between a predicted track box and a detection to match.
        min_hits: Consecutive matches a tentative track needs to be confirmed.
        max_lost_s: Stream seconds a lost confirmed track stays matchable before removal.
    """

    high_score: float = 0.5
    low_score: float = 0.15
    match_iou: float = 0.3
    min_hits: int = 3
    max_lost_s: float = 3.0

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
        velocity: Centre velocity ``(vx, vy)`` in pixels per second (moving average).
        lost: Whether the last update missed this (confirmed) track.
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

    def predicted(self, t: float) -> Box:
        """The box expected at stream time ``t`` under constant velocity.

        The horizon is capped at one second and the shift at three box sizes per axis, so a
        lost or jittery track never predicts a box far from where it was last seen.

        Args:
            t: Stream time in seconds.

        Returns:
            The predicted box.
        """
        dt = min(max(t - self.last_t, 0.0), MAX_PREDICT_S)
        if dt == 0.0:
            return self.box
        vx, vy = self.velocity
        max_dx, max_dy = MAX_SHIFT_BOXES * self.box.width, MAX_SHIFT_BOXES * self.box.height
        dx = float(np.clip(vx * dt, -max_dx, max_dx))
        dy = float(np.clip(vy * dt, -max_dy, max_dy))
        return self.box.shifted(dx, dy)

    def _observe(self, detection: Detection, t: float) -> None:
        dt = t - self.last_t
        if dt > 0.0:
            (ox, oy), (nx, ny) = self.box.center, detection.box.center
            inst = ((nx - ox) / dt, (ny - oy) / dt)
            if self.hits == 1:
                self.velocity = inst
            else:
                vx, vy = self.velocity
                self.velocity = (
                    vx + VELOCITY_ALPHA * (inst[0] - vx),
                    vy + VELOCITY_ALPHA * (inst[1] - vy),
                )
        self.box = detection.box
        self.score = detection.score
        self.best_score = max(self.best_score, detection.score)
        self.hits += 1
        self.last_t = t
        self.lost = False


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
            pairs2, _, _ = self._associate(second, low, t)
            matched_ids: set[int] = set()
            for track, det in pairs + pairs2:
                track._observe(det, t)
                matched_ids.add(track.id)
                if not track.confirmed and track.hits >= cfg.min_hits:
                    track.confirmed = True
                    result.confirmed_now.append(track)
                result.matched.append(track)

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
                )
                self._next_id += 1
                if cfg.min_hits <= 1:
                    track.confirmed = True
                    result.confirmed_now.append(track)
                result.matched.append(track)
                survivors.append(track)

        self._tracks = sorted(survivors, key=lambda tr: tr.id)
        return result

    def age_out(self, t: float) -> list[Track]:
        """Drop tracks not matched for more than ``max_lost_s`` at stream time ``t``.

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
            if t - track.last_t > self.config.max_lost_s:
                if track.confirmed:
                    track.lost = True
                    removed.append(track)
            else:
                kept.append(track)
        self._tracks = kept
        return removed

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
