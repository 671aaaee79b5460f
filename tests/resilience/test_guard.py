"""Guard: the composition fallback(retry(breaker(bulkhead(timeout(call))))) end to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from runtime.core.errors import (
    BulkheadFullError,
    CircuitOpenError,
    InternalError,
    OperationTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from runtime.core.events import BreakerStateChanged, Event, EventBus, FallbackUsed, RetryScheduled
from runtime.resilience import NO_FALLBACK, CircuitState, Guard, Resilience
from tests.support.clock import FakeClock, RecordingSleep
from tests.support.resilience import config_with


def guard(
    clock: FakeClock, sleep: RecordingSleep, bus: EventBus | None = None, service: str = "redis", **overrides: object
) -> Guard:
    base: dict[str, object] = dict(
        max_attempts=3,
        initial_delay=1.0,
        jitter=False,
        deadline=1000.0,
        failure_threshold=5,
        recovery_timeout=30.0,
        success_threshold=1,
    )
    base.update(overrides)
    res = Resilience(config_with(service, **base), bus, clock=clock, sleep=sleep)
    return res.guard(service)


class Backend:
    """A fake upstream that fails ``failures`` times with ``error`` and counts every call."""

    def __init__(self, failures: int = 0, error: BaseException | None = None, value: object = "ok") -> None:
        self.failures = failures
        self.error = error or ConnectionRefusedError("connection refused")
        self.value = value
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.value


# ---------------------------------------------------------------- retry


async def test_flaky_backend_is_retried_with_backoff_and_events(
    clock: FakeClock, sleep: RecordingSleep, bus: EventBus, events: list[Event]
) -> None:
    g = guard(clock, sleep, bus)
    backend = Backend(failures=2)
    assert await g.call(backend) == "ok"
    assert backend.calls == 3
    assert sleep.delays == [1.0, 2.0]
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert [(e.service, e.attempt, e.delay) for e in retries] == [("redis", 1, 1.0), ("redis", 2, 2.0)]
    assert "unreachable" in retries[0].error


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
async def test_upstream_attempts_never_exceed_one_plus_max_retries(
    clock: FakeClock, sleep: RecordingSleep, max_attempts: int
) -> None:
    g = guard(clock, sleep, max_attempts=max_attempts, failure_threshold=100)
    backend = Backend(failures=100)
    with pytest.raises(ServiceUnavailableError) as info:
        await g.call(backend)
    assert backend.calls == max_attempts
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_retry_after_is_respected_and_a_long_one_is_not_waited_for(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    g = guard(clock, sleep, retry_after_cap=60.0)
    backend = Backend(failures=2, error=RateLimitError("429", retry_after=5.0))
    assert await g.call(backend) == "ok"
    assert sleep.delays == [5.0, 5.0]

    too_long = Backend(failures=1, error=RateLimitError("429", retry_after=120.0))
    with pytest.raises(RateLimitError):
        await g.call(too_long)
    assert too_long.calls == 1
    assert sleep.delays == [5.0, 5.0]


async def test_deadline_bounds_the_whole_call(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=10, initial_delay=1.0, deadline=10.0, failure_threshold=100)
    backend = Backend(failures=100)
    with pytest.raises(ServiceUnavailableError):
        await g.call(backend)
    assert sum(sleep.delays) < 10.0
    assert sleep.delays == [1.0, 2.0, 4.0]  # the next wait (8 s) would end past the 10 s budget


async def test_caller_errors_are_not_retried_and_not_counted(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, failure_threshold=1)
    backend = Backend(failures=5, error=ValidationError("bad key"))
    for _ in range(3):
        with pytest.raises(ValidationError):
            await g.call(backend)
    assert backend.calls == 3 and sleep.delays == []
    assert g.breaker.state is CircuitState.CLOSED


async def test_a_bug_in_the_call_is_internal_not_retried_but_counted(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, failure_threshold=2)
    backend = Backend(failures=5, error=KeyError("missing"))
    with pytest.raises(InternalError) as info:
        await g.call(backend)
    assert isinstance(info.value.__cause__, KeyError)
    assert backend.calls == 1
    assert g.breaker.snapshot().failure_count == 1


async def test_open_breaker_stops_retries_at_once(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=5, failure_threshold=2)
    backend = Backend(failures=100)
    with pytest.raises(CircuitOpenError) as info:
        await g.call(backend)
    assert backend.calls == 2  # the breaker opened on the second failure; no third attempt
    assert sleep.delays == [1.0]  # and no sleep before a call that could not happen
    assert "unreachable" in (info.value.details["last_error"] or "")

    with pytest.raises(CircuitOpenError):
        await g.call(backend)
    assert backend.calls == 2  # rejected with no I/O


async def test_breaker_recovers_through_half_open(
    clock: FakeClock, sleep: RecordingSleep, bus: EventBus, events: list[Event]
) -> None:
    g = guard(clock, sleep, bus, max_attempts=1, failure_threshold=2, recovery_timeout=30.0)
    backend = Backend(failures=2)
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await g.call(backend)
    clock.advance(30)
    assert await g.call(backend) == "ok"
    transitions = [(e.old_state, e.new_state) for e in events if isinstance(e, BreakerStateChanged)]
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


# ---------------------------------------------------------------- timeout and cancellation


async def test_a_hung_call_times_out_counts_and_leaves_the_task_usable(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=1, timeout=0.05)
    never = asyncio.Event()
    with pytest.raises(OperationTimeoutError):
        await g.call(never.wait)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert g.breaker.snapshot().failure_count == 1
    assert g.bulkhead.in_use == 0
    assert await g.call(Backend()) == "ok"


async def test_a_timed_out_attempt_is_retried(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=2, timeout=0.05)
    calls = 0
    never = asyncio.Event()

    async def first_hangs() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await never.wait()
        return "second try"

    assert await g.call(first_hangs) == "second try"
    assert calls == 2 and sleep.delays == [1.0]


async def test_cancellation_propagates_and_never_counts(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, failure_threshold=1)
    for _ in range(5):
        entered = asyncio.Event()
        never = asyncio.Event()

        async def hang() -> None:
            entered.set()
            await never.wait()

        task = asyncio.ensure_future(g.call(hang))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    snap = g.breaker.snapshot()
    assert (snap.state, snap.failure_count, snap.calls_in_window) == ("closed", 0, 0)
    assert g.bulkhead.in_use == 0


async def test_a_cancelled_probe_frees_its_half_open_slot(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=1, failure_threshold=1, recovery_timeout=10.0)
    with pytest.raises(ServiceUnavailableError):
        await g.call(Backend(failures=1))
    clock.advance(10)
    entered, never = asyncio.Event(), asyncio.Event()

    async def hang() -> None:
        entered.set()
        await never.wait()

    probe = asyncio.ensure_future(g.call(hang))
    await entered.wait()
    with pytest.raises(CircuitOpenError):
        await g.call(Backend())  # the single probe slot is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert g.breaker.state is CircuitState.HALF_OPEN
    assert await g.call(Backend()) == "ok"
    assert g.breaker.state is CircuitState.CLOSED


# ---------------------------------------------------------------- bulkhead


async def test_bulkhead_caps_concurrency_and_queues_the_rest(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_concurrent=2, bulkhead_wait=5.0)
    gate, two_in = asyncio.Event(), asyncio.Event()
    active = peak = 0

    async def work() -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 2:
            two_in.set()
        await gate.wait()
        active -= 1
        return peak

    tasks = [asyncio.ensure_future(g.call(work)) for _ in range(6)]
    await two_in.wait()
    assert g.bulkhead.in_use == 2
    # Every task has now either entered or queued: each ran up to its first await.
    assert g.bulkhead.waiting == 4
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 2
    assert g.bulkhead.in_use == 0 and g.bulkhead.waiting == 0


async def test_full_bulkhead_rejects_after_its_wait_without_tripping_the_breaker(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    g = guard(clock, sleep, max_attempts=1, max_concurrent=1, bulkhead_wait=0.02, failure_threshold=1)
    entered, gate = asyncio.Event(), asyncio.Event()

    async def hold() -> str:
        entered.set()
        await gate.wait()
        return "held"

    holder = asyncio.ensure_future(g.call(hold))
    await entered.wait()
    with pytest.raises(BulkheadFullError):
        await g.call(Backend())
    assert g.breaker.state is CircuitState.CLOSED
    gate.set()
    assert await holder == "held"
    assert g.bulkhead.in_use == 0


async def test_open_breaker_rejects_before_taking_a_bulkhead_slot(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=1, max_concurrent=1, bulkhead_wait=0.0)
    g.breaker.force_open()
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            await g.call(Backend())
    assert g.bulkhead.in_use == 0


# ---------------------------------------------------------------- streams


def stream_backend(fail_before_first: int = 0, fail_after: int | None = None):  # type: ignore[no-untyped-def]
    state = {"calls": 0}

    async def gen() -> AsyncIterator[int]:
        state["calls"] += 1
        if state["calls"] <= fail_before_first:
            raise ConnectionResetError("reset before first token")
        for i in range(1, 4):
            if fail_after is not None and i > fail_after:
                raise ConnectionResetError("reset mid-stream")
            yield i

    return gen, state


async def test_stream_failing_before_its_first_item_is_retried(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep)
    gen, state = stream_backend(fail_before_first=2)
    assert [i async for i in g.stream(gen)] == [1, 2, 3]
    assert state["calls"] == 3 and sleep.delays == [1.0, 2.0]
    assert g.breaker.snapshot().failure_count == 0  # the final success reset the run


async def test_stream_failing_after_an_item_is_not_retried(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep)
    gen, state = stream_backend(fail_after=1)
    got: list[int] = []
    with pytest.raises(ServiceUnavailableError):
        async for item in g.stream(gen):
            got.append(item)
    assert got == [1] and state["calls"] == 1
    assert g.breaker.snapshot().failure_count == 1  # one stream, one failure
    assert g.bulkhead.in_use == 0


async def test_stopping_a_stream_early_counts_as_nothing(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, failure_threshold=1)
    gen, _ = stream_backend()
    async with contextlib.aclosing(g.stream(gen)) as items:
        async for item in items:
            assert item == 1
            break
    snap = g.breaker.snapshot()
    assert (snap.failure_count, snap.calls_in_window) == (0, 0)
    assert g.bulkhead.in_use == 0


async def test_stream_items_time_out(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, max_attempts=1, timeout=0.05)
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[int]:
        yield 1
        await never.wait()
        yield 2

    got: list[int] = []
    with pytest.raises(OperationTimeoutError):
        async for item in g.stream(stalls):
            got.append(item)
    assert got == [1]


async def test_open_breaker_rejects_a_stream_without_calling_it(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep)
    g.breaker.force_open()
    gen, state = stream_backend()
    with pytest.raises(CircuitOpenError):
        async for _ in g.stream(gen):
            pass
    assert state["calls"] == 0


# ---------------------------------------------------------------- fallback


async def test_cache_fallback_serves_the_last_good_value_marked_stale(
    clock: FakeClock, sleep: RecordingSleep, bus: EventBus, events: list[Event]
) -> None:
    g = guard(clock, sleep, bus, service="llm", max_attempts=1)
    fresh = await g.call_with_fallback(Backend(value="answer v1"), key="prompt-1")
    assert (fresh.value, fresh.source, fresh.stale, fresh.from_fallback) == ("answer v1", "primary", False, False)
    out = await g.call_with_fallback(Backend(failures=1), key="prompt-1")
    assert (out.value, out.source, out.stale) == ("answer v1", "cache", True)
    assert isinstance(out.error, ServiceUnavailableError)
    used = [e for e in events if isinstance(e, FallbackUsed)]
    assert [(e.service, e.fallback) for e in used] == [("llm", "cache")]
    with pytest.raises(ServiceUnavailableError):
        await g.call_with_fallback(Backend(failures=1), key="another prompt")


async def test_cache_entries_expire(clock: FakeClock, sleep: RecordingSleep) -> None:
    res = Resilience(config_with("llm", max_attempts=1), clock=clock, sleep=sleep)
    res.fallbacks.cache.ttl = 60.0
    g = res.guard("llm")
    await g.call_with_fallback(Backend(value="v"), key="k")
    clock.advance(61)
    with pytest.raises(ServiceUnavailableError):
        await g.call_with_fallback(Backend(failures=1), key="k")


async def test_registered_handlers_run_in_order_and_may_pass(clock: FakeClock, sleep: RecordingSleep) -> None:
    res = Resilience(config_with("memory", max_attempts=1), clock=clock, sleep=sleep)
    seen: list[str] = []

    def nothing(error: Exception, key: object) -> object:
        seen.append("nothing")
        return NO_FALLBACK

    async def lexical(error: Exception, key: object) -> list[str]:
        seen.append(f"lexical:{key}")
        return ["recalled lexically"]

    res.fallbacks.register("memory", nothing)
    res.fallbacks.register("memory", lexical, name="lexical")
    out = await res.guard("memory").call_with_fallback(Backend(failures=1), key="q")
    assert (out.value, out.source, out.stale) == (["recalled lexically"], "lexical", False)
    assert seen == ["nothing", "lexical:q"]


async def test_default_is_the_last_resort(clock: FakeClock, sleep: RecordingSleep) -> None:
    g = guard(clock, sleep, service="embeddings", max_attempts=1)
    out = await g.call_with_fallback(Backend(failures=1), default=[])
    assert (out.value, out.source) == ([], "default")
    ok = await g.call_with_fallback(Backend(value=[0.1]), default=[])
    assert (ok.value, ok.source) == ([0.1], "primary")


# ---------------------------------------------------------------- 1,000 callers at half-open


@pytest.mark.parametrize("probes", [1, 3])
async def test_thousand_callers_at_half_open_send_exactly_the_permitted_probes(
    clock: FakeClock, sleep: RecordingSleep, probes: int
) -> None:
    g = guard(
        clock,
        sleep,
        max_attempts=5,
        failure_threshold=1,
        recovery_timeout=10.0,
        half_open_max_probes=probes,
        success_threshold=1,
        max_concurrent=2000,
    )
    g.breaker.on_failure(g.breaker.acquire(), "backend down")
    clock.advance(10)
    reached = 0
    gate = asyncio.Event()

    async def backend() -> str:
        nonlocal reached
        reached += 1
        await gate.wait()
        return "ok"

    callers = 1000
    finished = 0

    def on_done(_: asyncio.Future[object]) -> None:
        nonlocal finished
        finished += 1
        if finished == callers - probes:
            gate.set()  # every non-probe caller has its answer: let the probes finish

    tasks = [asyncio.ensure_future(g.call(backend)) for _ in range(callers)]
    for task in tasks:
        task.add_done_callback(on_done)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert reached == probes
    assert sum(r == "ok" for r in results) == probes
    assert sum(isinstance(r, CircuitOpenError) for r in results) == callers - probes
    assert sleep.delays == []  # a rejection is not retried
    assert g.breaker.state is CircuitState.CLOSED


async def test_snapshots_are_plain_dicts(clock: FakeClock, sleep: RecordingSleep) -> None:
    res = Resilience(config_with("redis"), clock=clock, sleep=sleep)
    await res.guard("redis").call(Backend())
    res.guard("tool:calc")
    snaps = {s["name"]: s for s in res.snapshots()}
    assert set(snaps) == {"redis", "tool:calc"}
    assert snaps["redis"]["calls_in_window"] == 1 and snaps["redis"]["state"] == "closed"
    assert res.guard("redis") is res.guard("redis")
    assert res.guard("redis").snapshot()["in_flight"] == 0
