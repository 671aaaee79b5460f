"""Circuit breaker state machine, on a fake clock."""

from __future__ import annotations

import pytest

from runtime.core.errors import CircuitOpenError, NotFoundError, ServiceUnavailableError, ValidationError
from runtime.core.events import BreakerStateChanged, EventBus
from runtime.resilience import BreakerRegistry, CircuitBreaker, CircuitState
from tests.support.clock import FakeClock
from tests.support.resilience import config_with, settings

BOOM = ServiceUnavailableError("backend down")


def make(clock: FakeClock, bus: EventBus | None = None, **overrides: object) -> CircuitBreaker:
    base = dict(
        failure_threshold=3,
        recovery_timeout=10.0,
        success_threshold=2,
        window_size=10,
        minimum_calls=10,
        failure_rate_threshold=0.5,
    )
    base.update(overrides)
    return CircuitBreaker("svc", settings(**base), clock=clock, bus=bus)


def fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.on_failure(b.acquire(), BOOM)


def succeed(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.on_success(b.acquire())


def test_opens_after_consecutive_failures(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 2)
    assert b.state is CircuitState.CLOSED
    fail(b)
    assert b.state is CircuitState.OPEN
    assert b.snapshot().last_error == "backend down"


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    b = make(clock, minimum_calls=100, window_size=100)
    for _ in range(10):
        fail(b, 2)
        succeed(b)
    assert b.state is CircuitState.CLOSED


def test_opens_on_failure_rate_without_consecutive_run(clock: FakeClock) -> None:
    # Failures never come 3 in a row, but 6 of the last 10 calls failed.
    b = make(clock, failure_threshold=3, minimum_calls=10, window_size=10, failure_rate_threshold=0.6)
    pattern = [True, True, False, True, True, False, True, False, True, False]
    for i, failed in enumerate(pattern):
        assert b.state is CircuitState.CLOSED, f"opened early at call {i}"
        (fail if failed else succeed)(b)
    assert b.state is CircuitState.OPEN


def test_rate_needs_minimum_calls(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=100, minimum_calls=10, window_size=20, failure_rate_threshold=0.5)
    for _ in range(4):
        fail(b)
        succeed(b)
    assert b.state is CircuitState.CLOSED  # 50 % of 8 calls: below the minimum
    fail(b)
    succeed(b)
    assert b.state is CircuitState.OPEN  # 50 % of 10 calls


def test_count_window_forgets_old_failures(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=100, minimum_calls=4, window_size=4, failure_rate_threshold=0.75)
    fail(b, 2)
    succeed(b, 4)  # the two failures slide out
    fail(b, 2)
    assert b.snapshot().failures_in_window == 2
    assert b.state is CircuitState.CLOSED


def test_time_window_forgets_failures_older_than_the_window(clock: FakeClock) -> None:
    b = make(
        clock, failure_threshold=100, window_type="time", window_size=10, minimum_calls=4, failure_rate_threshold=0.5
    )
    fail(b, 3)
    clock.advance(11)
    succeed(b, 3)
    fail(b)
    snap = b.snapshot()
    assert (snap.calls_in_window, snap.failures_in_window) == (4, 1)
    assert b.state is CircuitState.CLOSED
    fail(b)
    assert b.state is CircuitState.CLOSED  # 2 of 5
    fail(b)
    assert b.state is CircuitState.OPEN  # 3 of 6


def test_slow_calls_count_as_failures(clock: FakeClock) -> None:
    b = make(clock, slow_call_seconds=2.0)
    for _ in range(3):
        b.on_success(b.acquire(), duration=2.5)
    assert b.state is CircuitState.OPEN
    assert "slow call" in (b.snapshot().last_error or "")


def test_open_rejects_fast_with_retry_after(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 3)
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.retry_after == pytest.approx(6.0)
    assert info.value.error_type.value == "circuit_open"
    assert b.snapshot().seconds_until_half_open == pytest.approx(6.0)


def test_half_open_after_recovery_timeout_then_closes_on_successes(clock: FakeClock) -> None:
    b = make(clock, success_threshold=2)
    fail(b, 3)
    clock.advance(10)
    assert b.state is CircuitState.OPEN  # it moves only when a call arrives
    permit = b.acquire()
    assert b.state is CircuitState.HALF_OPEN
    b.on_success(permit)
    assert b.state is CircuitState.HALF_OPEN
    succeed(b)
    assert b.state is CircuitState.CLOSED
    assert b.snapshot().failure_count == 0


def test_half_open_admits_only_the_permitted_probes(clock: FakeClock) -> None:
    b = make(clock, half_open_max_probes=2)
    fail(b, 3)
    clock.advance(10)
    first, second = b.acquire(), b.acquire()
    with pytest.raises(CircuitOpenError):
        b.acquire()
    b.on_ignore(first)  # a cancelled probe frees its slot without counting
    third = b.acquire()
    assert b.state is CircuitState.HALF_OPEN
    assert len({first, second, third}) == 3


def test_probe_failure_reopens_with_growing_open_duration(clock: FakeClock) -> None:
    b = make(clock, open_backoff=2.0, max_recovery_timeout=25.0)
    fail(b, 3)
    clock.advance(10)
    fail(b)  # the probe fails
    assert b.state is CircuitState.OPEN
    assert b.snapshot().seconds_until_half_open == pytest.approx(20.0)
    clock.advance(20)
    fail(b)
    assert b.snapshot().seconds_until_half_open == pytest.approx(25.0)  # capped


def test_stuck_probe_is_replaced_after_max_wait(clock: FakeClock) -> None:
    b = make(clock, probe_max_wait=30.0)
    fail(b, 3)
    clock.advance(10)
    stuck = b.acquire()
    clock.advance(29)
    with pytest.raises(CircuitOpenError):
        b.acquire()
    clock.advance(1)
    replacement = b.acquire()
    b.on_failure(stuck, BOOM)  # the late report of the replaced probe is ignored
    assert b.state is CircuitState.HALF_OPEN
    b.on_success(replacement)
    succeed(b)
    assert b.state is CircuitState.CLOSED


def test_report_from_before_a_transition_is_ignored(clock: FakeClock) -> None:
    b = make(clock)
    slow_call = b.acquire()  # admitted while closed
    fail(b, 3)
    clock.advance(10)
    probe = b.acquire()
    b.on_failure(slow_call, BOOM)  # finishes late: must not reopen the half-open breaker
    assert b.state is CircuitState.HALF_OPEN
    b.on_success(probe)
    assert b.snapshot().probes_in_flight == 0


@pytest.mark.parametrize("error", [ValidationError("bad input"), NotFoundError("no such key")])
def test_caller_errors_are_ignored(clock: FakeClock, error: Exception) -> None:
    b = make(clock)
    for _ in range(10):
        b.record(b.acquire(), error)
    assert b.state is CircuitState.CLOSED
    assert b.snapshot().calls_in_window == 0


def test_force_open_force_closed_and_reset(clock: FakeClock) -> None:
    b = make(clock)
    b.force_open()
    clock.advance(10_000)
    with pytest.raises(CircuitOpenError):
        b.acquire()
    assert b.snapshot().forced
    b.force_closed()
    assert b.state is CircuitState.CLOSED
    fail(b, 3)
    b.reset()
    snap = b.snapshot()
    assert (snap.state, snap.trips, snap.last_error, snap.failure_count) == ("closed", 0, None, 0)


def test_every_transition_reaches_listeners_and_the_bus(clock: FakeClock) -> None:
    bus = EventBus()
    seen = []
    bus.add_listener(seen.append)
    b = make(clock, bus, success_threshold=1)
    calls = []
    b.add_listener(lambda br, old, new, reason: calls.append((old.value, new.value)))
    fail(b, 3)
    clock.advance(10)
    succeed(b)
    expected = [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert calls == expected
    assert [(e.old_state, e.new_state) for e in seen if isinstance(e, BreakerStateChanged)] == expected


def test_a_broken_listener_does_not_break_the_breaker(clock: FakeClock) -> None:
    b = make(clock)

    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(broken)
    fail(b, 3)
    assert b.state is CircuitState.OPEN


async def test_spec_call_counts_foreign_exceptions_and_passes_results(clock: FakeClock) -> None:
    b = make(clock)

    async def ok(x: int) -> int:
        return x * 2

    async def broken() -> None:
        raise OSError("disk")

    assert await b.call(ok, 21) == 42
    for _ in range(3):
        with pytest.raises(OSError):
            await b.call(broken)
    assert b.get_state()["state"] == "open"


def test_registry_creates_per_service_breakers_from_config(clock: FakeClock) -> None:
    reg = BreakerRegistry(config_with("tools", failure_threshold=1), clock=clock)
    tool_a = reg.get("tool:a")
    assert reg.get_breaker("tool:a") is tool_a
    fail(tool_a)
    assert tool_a.state is CircuitState.OPEN
    assert reg.get("tool:b").state is CircuitState.CLOSED  # same settings, own state
    assert reg.get("redis").settings.failure_threshold == 5
    states = reg.get_all_states()
    assert states["tool:a"]["state"] == "open" and states["tool:b"]["state"] == "closed"
    assert {s.name for s in reg.snapshots()} == {"tool:a", "tool:b", "redis"}


@pytest.mark.parametrize("retry_after", [None, 3.0])
def test_rejection_error_is_a_full_circuit_open_error(retry_after: float | None) -> None:
    from runtime.resilience.breaker import BreakerOpen

    fast = BreakerOpen("llm", retry_after, last_error="boom")
    spec = CircuitOpenError("llm", retry_after, last_error="boom")
    assert isinstance(fast, CircuitOpenError)
    assert {key: getattr(fast, key) for key in vars(spec)} == vars(spec)
    assert str(fast) == str(spec) and fast.args == spec.args and fast.to_dict() == spec.to_dict()
