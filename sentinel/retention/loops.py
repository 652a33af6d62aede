"""A round of work every ``interval_s`` in a daemon thread, and on demand, serialised (the
retention actor's periodic jobs: audit anchoring, face scans; Ray-free so they are tested
without a cluster)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any

__all__ = ["PeriodicLoop"]


class PeriodicLoop(ABC):
    """Runs :meth:`run_round` every ``interval_s`` (the first at once) until stopped; ``run_now``
    runs one round between them. Subclasses keep ``last`` and ``last_error`` for ``status``.

    Args:
        interval_s: Time between rounds.
        name: The thread's name.
    """

    def __init__(self, interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, but got {interval_s}")
        self.interval_s = interval_s
        self.name = name
        self.last: dict[str, Any] | None = None
        self.last_error = ""
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def run_round(self) -> dict[str, Any]:
        """One round of work (called under the loop's lock); never raises for a failure the
        next round may not have (it records it in ``last_error`` and says so)."""

    def start(self) -> None:
        """Starts the loop (idempotent); the first round runs at once."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def run_now(self) -> dict[str, Any]:
        """One round now, serialised with the loop's."""
        with self._lock:
            return self.run_round()

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "interval_s": self.interval_s,
            "last": self.last,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.run_now()
            self._stopped.wait(self.interval_s)
