"""Benchmark: what a Guard costs per call, side by side with a bare await and peer breakers.

Printed, never asserted. Run with:
    .venv/bin/python -m pytest tests/bench/bench_resilience.py -o addopts="" -s

Every variant awaits the same trivial coroutine; rounds are interleaved so machine noise hits
all variants alike, and the median of per-round means is reported.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import aiobreaker
import pytest
import tenacity

from runtime.config import ResilienceConfig
from runtime.core.errors import CircuitOpenError
from runtime.resilience import CircuitBreaker, Resilience

pytestmark = pytest.mark.bench

ROUNDS = 15
CALLS = 5_000


async def work() -> int:
    return 1


def _variants() -> dict[str, Callable[[], Awaitable[object]]]:
    res = Resilience(ResilienceConfig())
    guard = res.guard("redis")
    open_guard = Resilience(ResilienceConfig()).guard("llm")
    open_guard.breaker.force_open()
    breaker = CircuitBreaker("bare")
    aio = aiobreaker.CircuitBreaker(fail_max=5)
    aio_open = aiobreaker.CircuitBreaker(fail_max=1)
    aio_open.open()

    @tenacity.retry(stop=tenacity.stop_after_attempt(3))
    async def tenacity_work() -> int:
        return await work()

    async def bare() -> object:
        return await work()

    async def guard_closed() -> object:
        return await guard.call(work)

    async def breaker_only() -> object:
        permit = breaker.acquire()
        result = await work()
        breaker.on_success(permit)
        return result

    async def timeout_only() -> object:
        async with asyncio.timeout(30):
            return await work()

    async def aiobreaker_closed() -> object:
        return await aio.call_async(work)

    async def guard_open() -> object:
        try:
            return await open_guard.call(work)
        except CircuitOpenError:
            return None

    async def aiobreaker_open() -> object:
        try:
            return await aio_open.call_async(work)
        except aiobreaker.CircuitBreakerError:
            return None

    return {
        "bare await": bare,
        "Guard.call (closed)": guard_closed,
        "CircuitBreaker acquire+report": breaker_only,
        "asyncio.timeout alone": timeout_only,
        "tenacity @retry (success)": tenacity_work,
        "aiobreaker call_async (closed)": aiobreaker_closed,
        "Guard.call (open, rejected)": guard_open,
        "aiobreaker (open, rejected)": aiobreaker_open,
    }


async def _measure() -> dict[str, float]:
    variants = _variants()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(CALLS):
                await fn()
            samples[name].append((time.perf_counter() - start) / CALLS * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


async def _tasks_created_by_guard_calls(n: int) -> int:
    loop = asyncio.get_running_loop()
    created = 0
    previous = loop.get_task_factory()

    def counting_factory(loop_: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop_, **kwargs)

    guard = Resilience(ResilienceConfig()).guard("redis")
    loop.set_task_factory(counting_factory)
    try:
        for _ in range(n):
            await guard.call(work)
    finally:
        loop.set_task_factory(previous)
    return created


async def test_bench_guard_overhead() -> None:
    results = await _measure()
    bare = results["bare await"]
    print(f"\nresilience benchmark: median of {ROUNDS} rounds x {CALLS} calls, microseconds per call")
    print(f"{'variant':34} {'us/call':>9} {'overhead vs bare':>17}")
    for name, us in results.items():
        print(f"{name:34} {us:9.2f} {us - bare:+17.2f}")
    print(
        f"targets: Guard closed overhead <= 5 us (got {results['Guard.call (closed)'] - bare:.2f}); "
        f"open rejection <= 2 us (got {results['Guard.call (open, rejected)']:.2f})"
    )
    print(f"tasks created by 1,000 Guard.call: {await _tasks_created_by_guard_calls(1000)}")
