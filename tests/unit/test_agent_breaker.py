from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from sentinel.domain.breaker import (
    BackendHealth,
    BackendRouter,
    BackendSpec,
    BreakerState,
    CircuitBreaker,
    TokenBudget,
)


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _state(breaker: CircuitBreaker) -> BreakerState:
    # A call, so mypy does not narrow the property across assertions.
    return breaker.state


def _breaker(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, reset_after_s=30.0, clock=clock)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the streak
    breaker.record_failure()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    clock.t = 29.9
    assert not breaker.allow()


def test_half_open_allows_one_probe_then_closes_on_success() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure()
    clock.t = 30.0
    assert breaker.allow()
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    assert not breaker.allow()
    breaker.record_success()
    assert _state(breaker) is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(5))


def test_half_open_probe_failure_reopens() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, threshold=2)
    breaker.record_failure()
    breaker.record_failure()
    clock.t = 31.0
    assert breaker.allow()
    breaker.record_failure()  # a single failed probe reopens, whatever the threshold
    assert _state(breaker) is BreakerState.OPEN
    clock.t = 60.0
    assert not breaker.allow()  # the reset timer restarted at 31
    clock.t = 61.0
    assert breaker.allow() and _state(breaker) is BreakerState.HALF_OPEN


def test_lost_probe_is_replaced_after_reset_time() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure()
    clock.t = 30.0
    assert breaker.allow()
    clock.t = 59.0
    assert not breaker.allow()
    clock.t = 60.0
    assert breaker.allow()


def test_late_results_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, threshold=1)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    clock.t = 30.0
    assert breaker.allow()


@pytest.mark.parametrize(
    ("threshold", "reset_after_s"), [(0, 30.0), (3, 0.0), (3, -1.0), (3, float("nan"))]
)
def test_breaker_validation(threshold: int, reset_after_s: float) -> None:
    with pytest.raises(ValueError, match="failure_threshold must be >= 1"):
        CircuitBreaker(threshold, reset_after_s)


DAY = 86_400.0


def test_budget_counts_per_utc_day() -> None:
    clock = FakeClock(10 * DAY + 100.0)
    budget = TokenBudget(1000, clock=clock)
    assert budget.can_spend(1000) and not budget.can_spend(1001)
    budget.spend(600)
    assert (budget.remaining, budget.can_spend(400), budget.can_spend(401)) == (400, True, False)
    budget.spend(500)  # actual usage may overshoot the estimate
    assert (budget.remaining, budget.spent, budget.can_spend(0)) == (0, 1100, True)
    clock.t = 11 * DAY - 0.001
    assert budget.remaining == 0
    clock.t = 11 * DAY  # 00:00 UTC: a new day
    assert (budget.remaining, budget.spent) == (1000, 0)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (lambda b: b.spend(-1), "n must be >= 0"),
        (lambda b: b.can_spend(-1), "n must be >= 0"),
        (lambda b: TokenBudget(-1), "daily_limit must be >= 0"),
    ],
)
def test_budget_validation(action: Callable[[TokenBudget], object], error: str) -> None:
    budget = TokenBudget(10, clock=FakeClock())
    with pytest.raises(ValueError, match=error):
        action(budget)


def _router(
    specs: list[BackendSpec], clock: FakeClock, budget: TokenBudget | None = None
) -> BackendRouter:
    return BackendRouter(specs, lambda: _breaker(clock, threshold=2), budget)


def test_router_orders_by_priority() -> None:
    specs = [BackendSpec("cloud", 2), BackendSpec("local", 0), BackendSpec("backup", 1)]
    router = _router(specs, FakeClock())
    assert router.order("ev-1") == ["local", "backup", "cloud"]


def test_router_skips_open_breakers_and_recovers() -> None:
    clock = FakeClock()
    router = _router([BackendSpec("local", 0), BackendSpec("cloud", 1)], clock)
    router.record("local", ok=False)
    router.record_error("local", "timeout after 20 s")
    router.record("local", ok=False)
    assert router.order("ev-1") == ["cloud"]
    clock.t = 30.0
    assert router.order("ev-2") == ["local", "cloud"]  # the probe is reserved
    assert router.order("ev-3") == ["cloud"]
    router.record("local", ok=True, tokens=10)
    assert router.order("ev-4") == ["local", "cloud"]
    assert router.health() == [
        BackendHealth("local", BreakerState.CLOSED, 2, 1, "timeout after 20 s", 0, 1.0),
        BackendHealth("cloud", BreakerState.CLOSED, 0, 0, None, 1, 1.0),
    ]


def test_router_weights_are_deterministic_and_proportional() -> None:
    specs = [BackendSpec("a", 0, weight=7.0), BackendSpec("b", 0, weight=3.0), BackendSpec("z", 1)]
    router = _router(specs, FakeClock())
    orders = [router.order(f"event-{i}") for i in range(10_000)]
    assert orders == [router.order(f"event-{i}") for i in range(10_000)]
    assert {tuple(o[1:]) for o in orders} == {("b", "z"), ("a", "z")}
    first = Counter(o[0] for o in orders)
    assert 6_800 <= first["a"] <= 7_200 and first["a"] + first["b"] == 10_000


def test_router_budget_and_tokens() -> None:
    budget = TokenBudget(100, clock=FakeClock())
    router = _router([BackendSpec("local", 0)], FakeClock(), budget)
    router.record("local", ok=True, tokens=60)
    assert budget.remaining == 40 and router.order("k") == ["local"]
    router.record("local", ok=True, tokens=60)
    assert router.order("k") == []


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: BackendRouter([]), "unique and non-empty"),
        (lambda: BackendRouter([BackendSpec("a", 0), BackendSpec("a", 1)]), "unique"),
        (lambda: BackendSpec("a", 0, weight=0.0), "weight must be > 0"),
        (lambda: BackendSpec("a", 0, timeout_s=-1.0), "timeout_s must be > 0"),
        (lambda: BackendSpec("", 0), "must not be empty"),
    ],
)
def test_router_validation(build: Callable[[], object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        build()


def test_router_unknown_backend() -> None:
    router = BackendRouter([BackendSpec("a", 0)])
    with pytest.raises(KeyError, match="unknown backend 'b'"):
        router.record("b", ok=True)
    with pytest.raises(KeyError, match="unknown backend 'b'"):
        router.record_error("b", "boom")
    assert router.timeout_s("a") == 20.0
