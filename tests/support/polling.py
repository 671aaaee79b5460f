"""The suite's one way to wait for a condition: poll it until a deadline, then fail saying what
was awaited. Tests never ``sleep`` for a fixed time hoping the condition holds by then.

:func:`wait_for` is for coroutines (a Textual Pilot passes ``pause=pilot.pause`` so the app
keeps refreshing between polls); :func:`wait_until` is its blocking twin for plain tests.
Both measure the deadline on ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

#: Default deadline in seconds: generous, because the suite shares 2 cores with other work.
DEFAULT_TIMEOUT = 30.0
#: Seconds between two polls.
INTERVAL = 0.02

Predicate = Callable[[], bool] | Callable[[], Awaitable[bool]]


class WaitTimeout(AssertionError):
    """Raised when a condition did not hold before its deadline; the message names it."""


def _timed_out(what: str, predicate: object, timeout: float) -> WaitTimeout:
    return WaitTimeout(f"timed out after {timeout:g} s waiting for {what or predicate}")


async def wait_for(
    predicate: Predicate,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "",
    *,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    interval: float = INTERVAL,
) -> None:
    """Poll ``predicate`` (a plain or async callable returning bool) until it is true.

    ``timeout`` and ``interval`` are seconds; ``pause`` is awaited between polls (``asyncio.sleep``,
    or a Pilot's ``pause``). Raises :class:`WaitTimeout` (an ``AssertionError``) naming ``what``
    (or the predicate) once ``timeout`` has passed with the predicate still false.
    """
    deadline = time.monotonic() + timeout
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise _timed_out(what, predicate, timeout)
        await pause(interval)


def wait_until(
    predicate: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT, what: str = "", *, interval: float = INTERVAL
) -> None:
    """Block, polling ``predicate`` every ``interval`` seconds, until it is true.

    Raises :class:`WaitTimeout` (an ``AssertionError``) naming ``what`` (or the predicate) once
    ``timeout`` seconds have passed with the predicate still false.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise _timed_out(what, predicate, timeout)
        time.sleep(interval)
