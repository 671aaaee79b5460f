"""Graceful shutdown: the turns running when SIGTERM arrives finish, up to a grace period.

uvicorn does the first half: on SIGTERM it stops accepting connections, waits for open
requests (a streaming turn is one) up to ``timeout_graceful_shutdown`` (set to
``[server].grace_period`` by :mod:`runtime.cli.serve`), then cancels the request tasks left. A
cancelled stream cancels its turn, and the agent keeps the partial answer, marked interrupted.
:class:`TurnTracker` does the second half, in the app's lifespan shutdown, before the runtime
stops: it waits for every turn task to end (turns run in their own tasks, see
:mod:`runtime.serve.turns`), cancels those still running after the grace period, and waits for
them to unwind so their partial answers are written while Redis is still connected.
"""

from __future__ import annotations

import asyncio
import logging

from runtime.core.errors import describe

log = logging.getLogger(__name__)

#: Seconds cancelled turns get to save their partial answers before the runtime stops anyway.
UNWIND_SECONDS = 5.0


class TurnTracker:
    """The set of running turn tasks of this process."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once shutdown began: new turns are refused (503) from then on.
        self.closing = False

    def add(self, task: asyncio.Task[None]) -> None:
        """Track ``task`` until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> int:
        """How many turns run now."""
        return len(self._tasks)

    async def drain(self, grace: float) -> int:
        """Stop taking turns, wait up to ``grace`` seconds for the running ones, cancel the rest
        and wait up to :data:`UNWIND_SECONDS` for them to save; returns how many were cancelled."""
        self.closing = True
        tasks = set(self._tasks)
        if not tasks:
            return 0
        log.info("shutdown: waiting up to %.1f s for %d running turn(s)", grace, len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, grace))
        if not pending:
            return 0
        log.warning("shutdown: cancelling %d turn(s) still running after %.1f s", len(pending), grace)
        for task in pending:
            task.cancel()
        _, stuck = await asyncio.wait(pending, timeout=UNWIND_SECONDS)
        for task in stuck:
            log.error("shutdown: a turn did not unwind within %.1f s: %s", UNWIND_SECONDS, task.get_name())
        for task in pending - stuck:
            if not task.cancelled() and task.exception() is not None:
                log.warning("shutdown: a cancelled turn failed: %s", describe(task.exception() or Exception()))
        return len(pending)
