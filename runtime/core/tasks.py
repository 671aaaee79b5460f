"""Stopping background tasks within a bound.

A background task that reads a socket (a Redis pub/sub subscription, a client that turns our
cancellation into an error) may not wake when cancelled; a runtime's stop must not hang on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

__all__ = ["cancel_within"]


async def cancel_within(
    tasks: Sequence[asyncio.Task[None]],
    within: float,
    what: str,
    log: logging.Logger,
) -> int:
    """Cancel ``tasks`` and wait at most ``within`` seconds for them to end.

    A task still running after that is left behind with a warning on ``log`` naming ``what`` ("live updates", "breaker sync"); a task that ended with an exception has it
    retrieved, so asyncio does not log it as never retrieved. Returns how many did not stop.
    Never raises (beyond the caller's own cancellation).
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return 0
    _, stuck = await asyncio.wait(tasks, timeout=within)
    if stuck:
        log.warning("%s: %d task(s) did not stop within %.1f s", what, len(stuck), within)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
    return len(stuck)
