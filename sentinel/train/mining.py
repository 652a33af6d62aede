"""Hard-example mining, Ray-free: which frames of a stretch of video are worth annotating.

Input: the detector's detections on sampled frames at a *low* threshold (e.g. 0.05, so that
what lies just below the operating threshold is seen), each frame's 64-bit scene hash
(:mod:`sentinel.train.framehash`), and the time spans operators flagged (false-positive
verdicts, agent/rule disagreements). Output: the chosen frames, each with its expected value
and the reasons it was chosen.

A frame's **uncertainty** adds up:

- ``near_threshold``: detections whose score lies near the operating threshold ``t``; each
  counts ``u = clip(1 - |s - t| / band, 0, 1)`` (``band`` defaults to ``t``), combined as the
  chance that at least one of them is on the wrong side, ``1 - prod(1 - u)``;
- ``flicker``: boxes reported (score >= ``t``) in this frame and in neither sampled neighbour
  (a blink: often a false positive), or reported in both neighbours and missing here (a
  dropout: often a miss), matched by IoU and label; ``1 - 0.5 ** count``;
- ``false_positive`` / ``disagreement``: a fixed boost for frames inside an event an operator
  marked false positive, or one where the alert agent and the rules disagreed.

Its **novelty** is its scene hash's Hamming distance to the frames already chosen or already
in the queue, ``min(1, d / novelty_bits)``; at ``d <= duplicate_bits`` it is a near-duplicate
and never chosen. Selection is greedy on ``uncertainty x novelty`` (novelty updated after each
pick) under the budget, less a small seeded random **calibration** sample drawn from the rest.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.types import Detection
from sentinel.train.framehash import hamming_to

__all__ = [
    "CALIBRATION",
    "DISAGREEMENT",
    "FALSE_POSITIVE",
    "FLICKER",
    "NEAR_THRESHOLD",
    "FlaggedSpan",
    "FrameObservation",
    "FrameScore",
    "MinedFrame",
    "MiningParams",
    "flicker_counts",
    "near_threshold",
    "score_frames",
    "select",
]

NEAR_THRESHOLD = "near_threshold"
FLICKER = "flicker"
FALSE_POSITIVE = "false_positive"
DISAGREEMENT = "disagreement"
CALIBRATION = "calibration"

SpanReason = Literal["false_positive", "disagreement"]


@dataclass(frozen=True, slots=True)
class FrameObservation:
    """One sampled frame as the scan saw it.

    Attributes:
        key: Unique within a job (e.g. ``"<segment id>#<index>"``); how the frame is read again.
        ts: The frame's wall time (tz-aware).
        detections: The detector's detections at the low threshold.
        phash: The frame's 64-bit scene hash.
        frame_index: Position in the source video (0-based) when known.
    """

    key: str
    ts: datetime
    detections: tuple[Detection, ...]
    phash: int
    frame_index: int | None = None


@dataclass(frozen=True, slots=True)
class FlaggedSpan:
    """A time span of a camera that operators or the agent flagged."""

    start: datetime
    end: datetime
    reason: SpanReason

    def __post_init__(self) -> None:
        if self.reason not in (FALSE_POSITIVE, DISAGREEMENT):
            raise ValueError(f"reason must be false_positive or disagreement, got {self.reason!r}")
        if self.end < self.start:
            raise ValueError(f"span ends ({self.end}) before it starts ({self.start})")

    def covers(self, ts: datetime) -> bool:
        return self.start <= ts <= self.end


@dataclass(frozen=True)
class MiningParams:
    """The knobs of the scoring (defaults measured on the sample video)."""

    threshold: float = 0.25  # the detector's operating threshold
    band: float | None = None  # half-width of the near-threshold band; None: ``threshold``
    labels: frozenset[str] | None = None  # None: every label
    flicker_iou: float = 0.3
    max_gap_s: float = 2.0  # sampled neighbours farther apart are not compared
    near_weight: float = 1.0
    flicker_weight: float = 1.0
    false_positive_boost: float = 1.0
    disagreement_boost: float = 0.5
    near_min: float = 0.5  # the near-threshold term that names the reason
    novelty_bits: int = 24  # a hash this far from every chosen/queued one is fully novel
    duplicate_bits: int = 6  # this close (or closer) is a near-duplicate
    calibration_share: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), but got {self.threshold}")
        if self.band is not None and self.band <= 0:
            raise ValueError(f"band must be positive, but got {self.band}")
        if not 0 <= self.calibration_share <= 1:
            raise ValueError(f"calibration_share must be in [0, 1], got {self.calibration_share}")
        if not 0 <= self.duplicate_bits < self.novelty_bits <= 64:
            raise ValueError(
                "need 0 <= duplicate_bits < novelty_bits <= 64, but got "
                f"{self.duplicate_bits} and {self.novelty_bits}"
            )


@dataclass(frozen=True, slots=True)
class FrameScore:
    """A frame's uncertainty and its parts."""

    uncertainty: float
    near: float
    flicker: int
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MinedFrame:
    """A chosen frame: its expected value (``uncertainty x novelty``) and why."""

    frame: FrameObservation
    score: float
    uncertainty: float
    novelty: float
    reasons: tuple[str, ...] = field(default=())


def near_threshold(scores: Sequence[float], threshold: float, band: float | None = None) -> float:
    """``1 - prod(1 - u_i)`` with ``u_i = clip(1 - |s_i - t| / band, 0, 1)``."""
    width = band if band is not None else threshold
    keep = 1.0
    for s in scores:
        u = min(1.0, max(0.0, 1.0 - abs(s - threshold) / width))
        keep *= 1.0 - u
    return 1.0 - keep


def _matched(box: Detection, others: Sequence[Detection], iou: float) -> bool:
    return any(o.label == box.label and o.box.iou(box.box) >= iou for o in others)


def flicker_counts(frames: Sequence[FrameObservation], params: MiningParams) -> list[int]:
    """Per frame (in the given order, which must be by time): blinks plus dropouts against its
    two sampled neighbours at the operating threshold; 0 without both neighbours in reach."""
    reported = [
        [d for d in f.detections if d.score >= params.threshold and _wanted(d, params)]
        for f in frames
    ]
    counts = [0] * len(frames)
    for i in range(1, len(frames) - 1):
        gap_before = (frames[i].ts - frames[i - 1].ts).total_seconds()
        gap_after = (frames[i + 1].ts - frames[i].ts).total_seconds()
        if gap_before > params.max_gap_s or gap_after > params.max_gap_s:
            continue
        prev, here, nxt = reported[i - 1], reported[i], reported[i + 1]
        blinks = sum(
            1
            for d in here
            if not _matched(d, prev, params.flicker_iou)
            and not _matched(d, nxt, params.flicker_iou)
        )
        dropouts = sum(
            1
            for d in prev
            if _matched(d, nxt, params.flicker_iou) and not _matched(d, here, params.flicker_iou)
        )
        counts[i] = blinks + dropouts
    return counts


def _wanted(d: Detection, params: MiningParams) -> bool:
    return params.labels is None or d.label in params.labels


def score_frames(
    frames: Sequence[FrameObservation],
    params: MiningParams,
    spans: Sequence[FlaggedSpan] = (),
) -> list[FrameScore]:
    """Every frame's uncertainty and reasons (frames in time order, for the flicker term)."""
    flickers = flicker_counts(frames, params)
    out: list[FrameScore] = []
    for frame, flicks in zip(frames, flickers, strict=True):
        scores = [d.score for d in frame.detections if _wanted(d, params)]
        near = near_threshold(scores, params.threshold, params.band)
        reasons: list[str] = []
        total = params.near_weight * near + params.flicker_weight * (1.0 - 0.5**flicks)
        if near >= params.near_min:
            reasons.append(NEAR_THRESHOLD)
        if flicks:
            reasons.append(FLICKER)
        for reason, boost in (
            (FALSE_POSITIVE, params.false_positive_boost),
            (DISAGREEMENT, params.disagreement_boost),
        ):
            if any(s.reason == reason and s.covers(frame.ts) for s in spans):
                total += boost
                reasons.append(reason)
        out.append(FrameScore(total, near, flicks, tuple(reasons)))
    return out


def calibration_count(budget: int, share: float) -> int:
    """Slots of ``budget`` kept for the random calibration sample (round half up)."""
    return min(budget, math.floor(budget * share + 0.5))


def select(
    frames: Sequence[FrameObservation],
    budget: int,
    params: MiningParams | None = None,
    *,
    spans: Sequence[FlaggedSpan] = (),
    queued: Sequence[int] = (),
) -> list[MinedFrame]:
    """Chooses up to ``budget`` frames: greedy on expected value, then a calibration sample.

    Args:
        frames: The scanned frames, in time order.
        budget: Most frames to choose (>= 0).
        params: The scoring knobs.
        spans: Flagged spans of the same camera.
        queued: Scene hashes of the camera's frames already in the annotation queue.

    Returns:
        The chosen frames, hard examples first (in the order picked), then calibration ones.
        No two are near-duplicates of each other or of a queued frame.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, but got {budget}")
    params = params or MiningParams()
    if not frames or budget == 0:
        return []
    scores = score_frames(frames, params, spans)
    hashes = np.array([f.phash for f in frames], dtype=np.uint64)
    nearest = np.full(len(frames), 64, dtype=np.int64)  # distance to the closest reference
    for h in queued:
        nearest = np.minimum(nearest, hamming_to(hashes, h))
    uncertainty = np.array([s.uncertainty for s in scores], dtype=np.float64)
    taken = np.zeros(len(frames), dtype=bool)
    chosen: list[MinedFrame] = []

    def novelty() -> NDArray[np.float64]:  # nearest starts at 64: nothing chosen is novel
        return np.minimum(1.0, nearest / params.novelty_bits).astype(np.float64)

    def take(i: int, value: float, nov: float, extra: tuple[str, ...] = ()) -> None:
        nonlocal nearest
        taken[i] = True
        reasons = (*scores[i].reasons, *extra)
        chosen.append(MinedFrame(frames[i], value, scores[i].uncertainty, nov, reasons))
        nearest = np.minimum(nearest, hamming_to(hashes, int(hashes[i])))

    calibration = calibration_count(budget, params.calibration_share)
    hard_budget = budget - calibration
    while len(chosen) < hard_budget:
        nov = novelty()
        value = np.where(taken | (nearest <= params.duplicate_bits), -1.0, uncertainty * nov)
        best = int(np.argmax(value))
        if value[best] <= 0.0:
            break  # nothing uncertain and new is left: the rest is calibration's
        take(best, float(value[best]), float(nov[best]))
    hard = len(chosen)
    order = list(range(len(frames)))
    random.Random(params.seed).shuffle(order)
    for i in order:
        if len(chosen) - hard >= calibration:
            break
        if taken[i] or nearest[i] <= params.duplicate_bits:
            continue
        novel = float(novelty()[i])
        take(i, float(uncertainty[i] * novel), novel, (CALIBRATION,))
    return chosen
