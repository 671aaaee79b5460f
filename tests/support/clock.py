"""The suite's one fake clock and one recording sleep.

Time is injected wherever behaviour depends on it (DESIGN.md, Conventions), so tests move a
:class:`FakeClock` by hand instead of waiting on the wall clock, and hand a
:class:`RecordingSleep` (or :meth:`FakeClock.sleep`) to code that would otherwise ``asyncio.sleep``.

The ``clock`` fixture (a fresh ``FakeClock`` at 1000.0) is registered for the whole suite in
``tests/conftest.py``; a directory's conftest may override it.
"""

from __future__ import annotations

import asyncio

import pytest

#: Where a fresh clock starts, in seconds: far enough from 0 that "0 means never" bugs show.
DEFAULT_START = 1000.0


class FakeClock:
    """A clock tests move by hand: calling it returns :attr:`now` (seconds, float).

    Stands in for ``time.monotonic`` or ``time.time`` (start it at a wall-clock epoch such as
    ``1_700_000_000.0`` for the latter). Nothing moves it except :meth:`advance`, :meth:`sleep`,
    a :class:`RecordingSleep` bound to it, or a test setting :attr:`now`.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self.now = start

    def __call__(self) -> float:
        """The current fake time, in seconds."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """An ``asyncio.sleep`` stand-in: advance by ``seconds``, then yield to the loop once
        (so other tasks run) without waiting on the wall clock."""
        self.advance(seconds)
        await asyncio.sleep(0)


class RecordingSleep:
    """An ``asyncio.sleep`` stand-in that records each requested delay (seconds) in
    :attr:`delays` and returns at once.

    With a ``clock`` it also advances that clock by each delay, so a retry policy's backoff is
    seen by a breaker's recovery timeout; without one, time stands still while it "sleeps".
    Each call yields to the event loop once, never waiting on the wall clock.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    """A fresh :class:`FakeClock` at :data:`DEFAULT_START` seconds."""
    return FakeClock()
