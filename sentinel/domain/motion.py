"""A cheap motion gate that decides which sampled frames are worth a detector call.

The gate compares a small grayscale frame (e.g. 96x72) against a running-average background.
Detection is skipped only when nothing moves, nothing is tracked and a detection ran recently.
Motion masks (see :mod:`sentinel.domain.masks`) are zeroed in both before they are compared, and
the changed fraction is taken over the pixels left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sentinel.domain.masks import Polygon, check_polygon, rasterise


@dataclass(frozen=True)
class MotionConfig:
    """Settings of the motion gate.

    Attributes:
        enabled: When false every frame is sent to the detector.
        threshold: Fraction of changed pixels (0..1) that counts as motion.
        pixel_delta: Gray-level difference (0..255) above which a pixel counts as changed.
        alpha: Weight of the new frame in the running-average background (0..1].
        max_idle_s: Stream seconds after which a detection is forced even without motion, so
            objects that entered unseen (or stopped before the gate noticed them) are found.
        masks: Polygons (normalised) whose pixels the gate ignores.
    """

    enabled: bool = True
    threshold: float = 0.003
    pixel_delta: int = 18
    alpha: float = 0.1
    max_idle_s: float = 10.0
    masks: tuple[Polygon, ...] = ()

    def __post_init__(self) -> None:
        for polygon in self.masks:
            check_polygon(polygon, "motion mask")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], but got {self.threshold}")
        if not 0 <= self.pixel_delta <= 255:
            raise ValueError(f"pixel_delta must be in [0, 255], but got {self.pixel_delta}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], but got {self.alpha}")
        if self.max_idle_s < 0.0:
            raise ValueError(f"max_idle_s must be >= 0, but got {self.max_idle_s}")


@dataclass(frozen=True)
class MotionDecision:
    """The gate's verdict on one frame.

    Attributes:
        motion: Fraction of pixels that changed against the background (0..1).
        detect: Whether the detector should run on this frame.
        reason: Why: ``"first frame"``, ``"reset"`` (frame size changed), ``"gate off"``,
            ``"tracking"``, ``"motion"``, ``"refresh"`` (``max_idle_s`` elapsed) or ``"idle"``
            (no detection). With only stationary objects tracked (see
            :class:`sentinel.domain.pipeline.FramePipeline`) also ``"touched"`` (motion in a
            stationary object's box), ``"recheck"`` (their re-check interval elapsed) or
            ``"stationary"`` (no detection: they are held).
        mask: Which pixels of the gray frame changed against the background (``(H, W)``
            bool, masked pixels never set); ``None`` on the first frame and after a reset,
            when there is no background to compare with. Region planning and stationary
            objects read it.
    """

    motion: float
    detect: bool
    reason: str
    mask: NDArray[np.bool_] | None = field(default=None, compare=False, repr=False)


class MotionGate:
    """Running-average background subtraction on small grayscale frames.

    Args:
        config: Gate settings.
    """

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config if config is not None else MotionConfig()
        self._background: NDArray[np.float32] | None = None
        self._last_detect_t: float | None = None
        # Per frame size: which pixels count (False on the masks) and how many do.
        self._keep: NDArray[np.bool_] | None = None
        self._kept = 0

    def reset(self) -> None:
        """Forget the background and the time of the last detection."""
        self._background = None
        self._last_detect_t = None

    def check(
        self,
        gray: NDArray[np.uint8],
        t: float,
        tracking: bool,
        *,
        idle_s: float | None = None,
        idle_reason: str = "refresh",
    ) -> MotionDecision:
        """Update the background with ``gray`` and decide whether to run the detector.

        Args:
            gray: An ``(H, W)`` uint8 grayscale frame; a new size resets the background.
            t: Stream time of the frame in seconds.
            tracking: Whether something is being tracked (forces detection).
            idle_s: Replaces ``max_idle_s`` for this frame.
            idle_reason: The reason given when that interval forces a detection.

        Returns:
            The decision for this frame.

        Raises:
            ValueError: If ``gray`` is not a non-empty 2-D uint8 array.
        """
        if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.size == 0:
            shape = getattr(gray, "shape", None)
            raise ValueError(f"gray must be an (H, W) uint8 array, but got shape {shape}")
        if gray.dtype != np.uint8:
            raise ValueError(f"gray must be an (H, W) uint8 array, but got dtype {gray.dtype}")

        frame = box_blur3(gray)
        keep = self._keep_mask(frame.shape)
        if keep is not None:
            frame *= keep  # masked pixels are 0 in the frame and so in the background
        background = self._background
        if background is None or background.shape != frame.shape:
            self._background = frame
            return self._decide(0.0, t, "first frame" if background is None else "reset")

        changed = np.abs(frame - background) > float(self.config.pixel_delta)
        counted = self._kept if keep is not None else changed.size
        motion = float(np.count_nonzero(changed)) / float(counted) if counted else 0.0
        # In-place running average: slow enough that a passing object barely enters the
        # background, fast enough that lighting drift and parked objects are absorbed.
        background *= 1.0 - self.config.alpha
        background += self.config.alpha * frame

        if not self.config.enabled:
            return self._decide(motion, t, "gate off", changed)
        if tracking:
            return self._decide(motion, t, "tracking", changed)
        if motion >= self.config.threshold:
            return self._decide(motion, t, "motion", changed)
        last = self._last_detect_t
        idle = self.config.max_idle_s if idle_s is None else idle_s
        if last is None or t - last >= idle:
            return self._decide(motion, t, idle_reason, changed)
        return MotionDecision(motion=motion, detect=False, reason="idle", mask=changed)

    def force(self, decision: MotionDecision, t: float, reason: str) -> MotionDecision:
        """Turn a decision of this gate for the frame at ``t`` into a detection (the caller
        knows better, e.g. motion touched a stationary object): the idle interval restarts.

        Args:
            decision: The decision :meth:`check` returned for the frame.
            t: Stream time of the frame in seconds.
            reason: Why the frame goes to the detector.

        Returns:
            The decision with ``detect`` set and ``reason`` replaced.
        """
        return self._decide(decision.motion, t, reason, decision.mask)

    def _keep_mask(self, shape: tuple[int, ...]) -> NDArray[np.bool_] | None:
        """False on the masked pixels of a frame of ``shape``; None without masks."""
        if not self.config.masks:
            return None
        if self._keep is None or self._keep.shape != shape:
            height, width = shape
            self._keep = ~rasterise(self.config.masks, width, height)
            self._kept = int(np.count_nonzero(self._keep))
        return self._keep

    def _decide(
        self, motion: float, t: float, reason: str, mask: NDArray[np.bool_] | None = None
    ) -> MotionDecision:
        self._last_detect_t = t
        return MotionDecision(motion=motion, detect=True, reason=reason, mask=mask)


def box_blur3(gray: NDArray[np.uint8]) -> NDArray[np.float32]:
    """A 3x3 box blur with edge replication, as float32 (removes pixel noise before diffing).

    Args:
        gray: An ``(H, W)`` grayscale image.

    Returns:
        The blurred ``(H, W)`` float32 image.
    """
    padded = np.pad(gray.astype(np.float32), 1, mode="edge")
    height, width = gray.shape
    out = np.zeros((height, width), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            out += padded[dy : dy + height, dx : dx + width]
    out /= 9.0
    return out
