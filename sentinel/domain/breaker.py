"""Keeping the alert agent's LLM backends honest: circuit breakers, a token budget, routing.

Pure and clock-injected, so unit tests drive time by hand. Not thread-safe: each agent
replica owns its own router, as a Ray actor serialises calls into it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

Clock = Callable[[], float]

_SECONDS_PER_DAY = 86_400
MAX_ERROR_CHARS = 500


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a failing backend, then lets one probe through to test recovery.

    Closed: calls flow; ``failure_threshold`` consecutive failures open it. Open: calls are
    refused until ``reset_after_s`` has passed, then it turns half-open. Half-open: one probe
    at a time is allowed; its success closes the breaker, its failure reopens it. A probe
    that never reports (its caller died) is presumed lost after ``reset_after_s``, so the
    breaker cannot stay stuck half-open. Results arriving while open (from calls started
    before it opened) are ignored.
    """

    def __init__(
        self, failure_threshold: int = 3, reset_after_s: float = 30.0, clock: Clock = time.monotonic
    ) -> None:
        if failure_threshold < 1 or not reset_after_s > 0:
            raise ValueError(
                "failure_threshold must be >= 1 and reset_after_s > 0, "
                f"but got {failure_threshold} and {reset_after_s}"
            )
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its reset time still reads open)."""
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open this reserves the single probe."""
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self.reset_after_s:
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_started = None
        if self._probe_started is not None and now - self._probe_started < self.reset_after_s:
            return False
        self._probe_started = now
        return True

    def record_success(self) -> None:
        """Reports a successful call: closes a half-open breaker, clears the failure count."""
        if self._state is BreakerState.OPEN:
            return
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_started = None

    def record_failure(self) -> None:
        """Reports a failed call: may open a closed breaker; reopens a half-open one."""
        if self._state is BreakerState.OPEN:
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probe_started = None


class TokenBudget:
    """Caps the tokens spent per UTC day; the count resets at 00:00 UTC.

    ``clock`` returns seconds since the Unix epoch (``time.time``).
    """

    def __init__(self, daily_limit: int, clock: Clock = time.time) -> None:
        if daily_limit < 0:
            raise ValueError(f"daily_limit must be >= 0, but got {daily_limit}")
        self.daily_limit = daily_limit
        self._clock = clock
        self._day = self._today()
        self._spent = 0

    def _today(self) -> int:
        return math.floor(self._clock() / _SECONDS_PER_DAY)

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._spent = today, 0

    @property
    def spent(self) -> int:
        """Tokens spent today (UTC)."""
        self._roll()
        return self._spent

    @property
    def remaining(self) -> int:
        """Tokens left today; never negative."""
        return max(0, self.daily_limit - self.spent)

    def can_spend(self, n: int) -> bool:
        """Whether ``n`` more tokens fit in today's budget."""
        if n < 0:
            raise ValueError(f"n must be >= 0, but got {n}")
        return n <= self.remaining

    def spend(self, n: int) -> None:
        """Records ``n`` tokens actually used; may overshoot, since usage is known only after."""
        if n < 0:
            raise ValueError(f"n must be >= 0, but got {n}")
        self._roll()
        self._spent += n


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One LLM backend the agent may call."""

    name: str
    priority: int  # lower is tried first
    weight: float = 1.0  # share among backends of equal priority
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("backend name must not be empty")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"backend {self.name!r}: weight must be > 0, got {self.weight}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"backend {self.name!r}: timeout_s must be > 0, got {self.timeout_s}")


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """A backend's standing, for the health endpoint and the UI."""

    name: str
    state: BreakerState
    failures: int
    successes: int
    last_error: str | None
    priority: int
    weight: float


def _unit(*parts: str) -> float:
    """A deterministic float in [0, 1) from the given strings."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class BackendRouter:
    """Orders backends for each request and keeps their breakers and counters."""

    def __init__(
        self,
        specs: Sequence[BackendSpec],
        breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
        budget: TokenBudget | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"backend names must be unique and non-empty, but got {names}")
        self._specs = {spec.name: spec for spec in specs}
        self._breakers = {name: breaker_factory() for name in names}
        self._failures = dict.fromkeys(names, 0)
        self._successes = dict.fromkeys(names, 0)
        self._last_error: dict[str, str | None] = dict.fromkeys(names)
        self.budget = budget

    def _spec(self, name: str) -> BackendSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown backend {name!r}; known: {sorted(self._specs)}") from None

    def _weighted(self, key: str, group: list[BackendSpec]) -> list[BackendSpec]:
        """Weighted sampling without replacement, seeded by ``key``."""
        pool = sorted(group, key=lambda s: s.name)
        ordered: list[BackendSpec] = []
        while pool:
            u = _unit(key, str(pool[0].priority), str(len(ordered))) * sum(s.weight for s in pool)
            pick = pool[-1]
            for spec in pool:
                if u < spec.weight:
                    pick = spec
                    break
                u -= spec.weight
            ordered.append(pick)
            pool.remove(pick)
        return ordered

    def order(self, key: str) -> list[str]:
        """Backends to try for one request, in order.

        Lower priority first; among equal priority a weighted choice that is deterministic
        in ``key`` (the same event goes to the same backend). Backends whose breaker refuses
        are skipped; a half-open one listed here holds its probe slot. Empty when the token
        budget is spent, so the caller falls back to rules.
        """
        if self.budget is not None and self.budget.remaining <= 0:
            return []
        priorities = sorted({spec.priority for spec in self._specs.values()})
        ordered: list[str] = []
        for priority in priorities:
            group = [s for s in self._specs.values() if s.priority == priority]
            ordered += [
                s.name for s in self._weighted(key, group) if self._breakers[s.name].allow()
            ]
        return ordered

    def record(self, name: str, ok: bool, tokens: int = 0) -> None:
        """Reports one call's outcome and the tokens it used."""
        self._spec(name)
        if ok:
            self._successes[name] += 1
            self._breakers[name].record_success()
        else:
            self._failures[name] += 1
            self._breakers[name].record_failure()
        if self.budget is not None and tokens:
            self.budget.spend(tokens)

    def record_error(self, name: str, message: str) -> None:
        """Keeps a failure's message for health(); counts nothing (call ``record`` for that)."""
        self._spec(name)
        self._last_error[name] = message[:MAX_ERROR_CHARS]

    def timeout_s(self, name: str) -> float:
        """The call timeout for a backend."""
        return self._spec(name).timeout_s

    def health(self) -> list[BackendHealth]:
        """Every backend's state and counters, in priority then name order."""
        return [
            BackendHealth(
                name=spec.name,
                state=self._breakers[spec.name].state,
                failures=self._failures[spec.name],
                successes=self._successes[spec.name],
                last_error=self._last_error[spec.name],
                priority=spec.priority,
                weight=spec.weight,
            )
            for spec in sorted(self._specs.values(), key=lambda s: (s.priority, s.name))
        ]
