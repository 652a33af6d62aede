"""When to restart a crashed camera: at most N restarts in a sliding window, with backoff."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class RestartPolicy:
    """Allows ``max_restarts`` restarts per ``window_s``; beyond that the camera has failed.

    ``record(t)`` is called for each crash at time ``t`` and answers whether (and after what
    delay) to restart. Delays double from ``initial_delay_s`` up to ``max_delay_s``.
    """

    max_restarts: int = 5
    window_s: float = 60.0
    initial_delay_s: float = 0.5
    max_delay_s: float = 10.0
    _crashes: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.window_s <= 0:
            raise ValueError(
                f"max_restarts must be >= 0 and window_s > 0, "
                f"but got {self.max_restarts} and {self.window_s}"
            )

    def record(self, t: float) -> float | None:
        """Registers a crash at ``t``; returns the restart delay, or None when out of restarts."""
        while self._crashes and t - self._crashes[0] > self.window_s:
            self._crashes.popleft()
        self._crashes.append(t)
        if len(self._crashes) > self.max_restarts:
            return None
        return min(self.max_delay_s, self.initial_delay_s * 2.0 ** (len(self._crashes) - 1))

    @property
    def recent(self) -> int:
        return len(self._crashes)

    def reset(self) -> None:
        self._crashes.clear()
