"""Bulkhead: at most ``max_concurrent`` calls in flight per service, with a bounded wait.

A hand-rolled FIFO semaphore rather than :class:`asyncio.Semaphore` so the guard's common
path is one synchronous :meth:`Bulkhead.try_acquire` (no coroutine, no await) and only a
full bulkhead pays for a future and a timer. Waiters are served in arrival order; a freed
slot is handed directly to the next waiter so a newcomer cannot jump the queue.
"""

from __future__ import annotations

import asyncio
from collections import deque

from runtime.core.errors import BulkheadFullError


class Bulkhead:
    """At most ``max_concurrent`` calls to service ``name`` at once; others wait up to ``max_wait`` seconds.

    ``max_wait`` <= 0 means a full bulkhead rejects at once. Pair every successful
    :meth:`try_acquire` or :meth:`acquire` with one :meth:`release`.
    """

    def __init__(self, name: str, max_concurrent: int, max_wait: float) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait
        self._free = max_concurrent
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        """Slots taken now (calls in flight)."""
        return self.max_concurrent - self._free

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot without waiting; False when none is free (or others queue for one)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting at most ``max_wait`` seconds, in arrival order.

        Raises:
            BulkheadFullError: no slot freed up within ``max_wait`` (retryable, status 503).
        """
        if self.try_acquire():
            return
        if self.max_wait <= 0:
            raise self._full()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(self.max_wait, self._expire, fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # The slot was handed to us but we were cancelled before resuming: pass it on.
                self.release()
            else:
                self._discard(fut)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a slot back; it goes straight to the oldest live waiter, if any."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot moves to this waiter; _free is unchanged
                return
        self._free += 1

    def _expire(self, fut: asyncio.Future[None]) -> None:
        if not fut.done():
            self._discard(fut)
            fut.set_exception(self._full())

    def _discard(self, fut: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass

    def _full(self) -> BulkheadFullError:
        return BulkheadFullError(
            f"{self.name} is busy ({self.max_concurrent} calls in flight; waited {self.max_wait:g}s)",
            service=self.name,
            details={"max_concurrent": self.max_concurrent, "max_wait": self.max_wait},
        )
