"""Guard deadlines for streams and calls (issue 14, case 8): a logical call that never gets
going ends by its deadline however long one attempt's timeout is; only items are progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.core.errors import OperationTimeoutError, ServiceUnavailableError
from runtime.resilience import Resilience
from runtime.resilience.guard import Guard


def guard(**settings: float) -> Guard:
    base = dict(max_attempts=3, initial_delay=0.01, max_delay=0.02, jitter=False)
    return Resilience(ResilienceConfig(llm=ServiceResilience(**{**base, **settings}))).guard("llm")


async def test_a_stream_that_never_yields_ends_at_the_deadline_not_the_timeout() -> None:
    g = guard(timeout=30.0, deadline=0.3)
    attempts = 0

    async def silent() -> AsyncIterator[int]:
        nonlocal attempts
        attempts += 1
        await asyncio.Event().wait()  # bytes may flow (keep-alives), items never do
        yield 0

    started = time.monotonic()
    with pytest.raises(OperationTimeoutError) as info:
        async for _ in g.stream(silent):
            pass
    assert 0.25 < time.monotonic() - started < 1.5
    assert "deadline of 0.3s" in info.value.message and attempts == 1


async def test_retries_share_the_deadline() -> None:
    """A first attempt that fails at once, a second that hangs: the second gets only the time left."""
    g = guard(timeout=30.0, deadline=0.4)
    attempts = 0

    async def flaky() -> AsyncIterator[int]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ServiceUnavailableError("refused", service="llm")
        await asyncio.Event().wait()
        yield 0

    started = time.monotonic()
    with pytest.raises(OperationTimeoutError):
        async for _ in g.stream(flaky):
            pass
    assert time.monotonic() - started < 1.5 and attempts == 2


async def test_a_flowing_stream_is_not_cut_by_the_deadline() -> None:
    """Items every 50 ms for 0.6 s, past a 0.3 s deadline: the answer is arriving, so it is
    not cut (each item still has to come within the 0.2 s timeout)."""
    g = guard(timeout=0.2, deadline=0.3)

    async def steady() -> AsyncIterator[int]:
        for i in range(12):
            await asyncio.sleep(0.05)
            yield i

    assert [i async for i in g.stream(steady)] == list(range(12))


async def test_a_stream_that_stalls_after_items_times_out_per_item() -> None:
    g = guard(timeout=0.2, deadline=30.0)

    async def stalls() -> AsyncIterator[int]:
        yield 1
        await asyncio.Event().wait()
        yield 2

    got: list[int] = []
    with pytest.raises(OperationTimeoutError) as info:
        async for i in g.stream(stalls):
            got.append(i)
    assert got == [1] and "within 0.2s" in info.value.message


async def test_a_call_whose_deadline_is_shorter_than_its_timeout_ends_by_the_deadline() -> None:
    g = guard(timeout=30.0, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError):
        await g.call(lambda: asyncio.Event().wait())
    assert time.monotonic() - started < 1.5
