"""Timing policies of a camera loop: which frames to analyse, how long to wait to reconnect.

`FrameSampler` analyses a source at a target rate, whatever rate it arrives at; `Backoff`
spaces reconnection attempts. Both are pure: no clock, no sleeping.
"""

from __future__ import annotations

import math
import random

_EMA_ALPHA = 0.1  # weight of the newest frame interval in the source-interval estimate
_MAX_INTERVAL_S = 1.0  # longer steps are gaps (a stall, a lost connection), not the frame rate


class FrameSampler:
    """Decides which frames to analyse so that the taken rate approximates ``target_fps``.

    Frames are taken on a grid of due times spaced ``1 / target_fps`` apart: a frame is taken
    when it reaches the next due time, which then advances by one period. Advancing by the
    period (not from the frame's own time) keeps the long-run rate at the target for any
    source rate: 10 fps at 5 takes every 2nd frame, 30 fps every 6th, 7 fps about 5 a second,
    and a source at or below the target has every frame taken.

    A frame within half a source interval of its due time counts as due, so timestamp jitter
    does not skip a frame that belongs to the grid. After a gap (the grid more than one period
    behind) the grid restarts at the frame, so a stall is not followed by a burst. A timestamp
    that goes backwards (a reconnected stream starting over) restarts the sampler.
    """

    def __init__(self, target_fps: float) -> None:
        """Creates a sampler.

        Args:
            target_fps: Frames per second to take; must be finite and > 0.

        Raises:
            ValueError: ``target_fps`` is not a positive finite number.
        """
        if not (isinstance(target_fps, int | float) and math.isfinite(target_fps)):
            raise ValueError(f"target_fps must be a finite number, got {target_fps!r}")
        if target_fps <= 0:
            raise ValueError(f"target_fps must be > 0, got {target_fps}")
        self.target_fps = float(target_fps)
        self.period_s = 1.0 / self.target_fps
        self.taken = 0
        self.seen = 0
        self._due: float | None = None
        self._last_ts: float | None = None
        self._interval: float | None = None

    def take(self, ts: float) -> bool:
        """Says whether the frame at stream time ``ts`` (seconds) should be analysed.

        Args:
            ts: The frame's timestamp; frames are expected in increasing order.

        Returns:
            True to analyse the frame, False to skip it.

        Raises:
            ValueError: ``ts`` is NaN or infinite.
        """
        if not math.isfinite(ts):
            raise ValueError(f"frame timestamp must be finite, got {ts}")
        self.seen += 1
        last, self._last_ts = self._last_ts, ts
        if last is not None and ts < last:
            self._due = self._interval = None  # time went backwards: a new stream
        elif last is not None and 0 < ts - last <= _MAX_INTERVAL_S:
            step, known = ts - last, self._interval
            self._interval = step if known is None else known + _EMA_ALPHA * (step - known)
        if self._due is None:
            return self._take(ts)
        tolerance = min(self.period_s, self._interval or 0.0) / 2
        if ts < self._due - tolerance:
            return False
        return self._take(ts)

    def _take(self, ts: float) -> bool:
        due = ts if self._due is None else self._due
        due += self.period_s
        # Behind by more than a period (a gap, or a source slower than the target): restart the
        # grid here instead of taking frames back-to-back to catch up.
        self._due = ts + self.period_s if due < ts else due
        self.taken += 1
        return True

    def reset(self) -> None:
        """Forgets the past: the next frame is taken and starts a new grid."""
        self._due = self._last_ts = self._interval = None


class Backoff:
    """Exponential backoff with jitter between reconnects; pure (no clock, no sleeping)."""

    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        """Validates the schedule.

        Args:
            initial_s: First delay.
            max_s: Largest delay, jitter included.
            factor: Growth per attempt (>= 1).
            jitter: Relative spread: each delay is scaled by a factor in [1-jitter, 1+jitter].
            rng: Random source (seed it in tests).

        Raises:
            ValueError: a bound is out of range.
        """
        if not 0 < initial_s <= max_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError(
                "need 0 < initial_s <= max_s, factor >= 1 and 0 <= jitter < 1, got "
                f"initial_s={initial_s}, max_s={max_s}, factor={factor}, jitter={jitter}"
            )
        self.initial_s, self.max_s, self.factor, self.jitter = initial_s, max_s, factor, jitter
        self._rng = rng or random.Random()
        self._base = initial_s

    def next(self) -> float:
        """Returns the delay before the next attempt, and grows the one after."""
        delay = self._base * (1 + self._rng.uniform(-self.jitter, self.jitter))
        self._base = min(self.max_s, self._base * self.factor)
        return min(self.max_s, delay)

    def reset(self) -> None:
        """Starts over from ``initial_s`` (after a success)."""
        self._base = self.initial_s
