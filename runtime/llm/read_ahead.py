"""Read a streamed HTTP body ahead of its consumer, handing over everything parsed so far.

Owns one task per stream that reads the body's chunks and turns them into items as they
arrive; the consumer takes *all* items parsed since its last turn as one batch. When the
consumer keeps up, a batch is one network chunk; when it falls behind (an unpaced fast
endpoint, a busy machine), a batch is whatever arrived meanwhile. The per-item costs above
it (the guard's timeout scope per item, generator hops) are then paid per batch, not per
token, without ever delaying an item that has arrived.

A socket read finds data already queued when the endpoint is faster than the parsing, so
the reader may not suspend for a whole stream. It therefore hands the loop over on its
own: right after the first item (time to first token is what a user feels), then at least
every ``max_hold`` seconds (1 ms: far below a rendered frame) while items wait.

Errors raised while reading or parsing reach the consumer after the items parsed before
them, in order. Closing the reader cancels its task; the caller closes the response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: ``feed(chunk, out)`` appends the chunk's items to ``out``; True means the stream is logically done.
Feed = Callable[[bytes, list[T]], bool]
#: Longest an item waits for the consumer while the reader keeps parsing (seconds).
MAX_HOLD = 0.001

#: ``finish(out, completed)`` runs once the body ended (``completed``: ``feed`` said done) and appends any last items.
Finish = Callable[[list[T], bool], Awaitable[None]]


class ReadAhead(Generic[T]):
    """Start it with :meth:`start`; take batches with :meth:`next_batch`; always :meth:`aclose`."""

    def __init__(self, source: AsyncIterator[bytes], feed: Feed[T], finish: Finish[T], *,
                 clock: Callable[[], float] = time.perf_counter, max_hold: float = MAX_HOLD) -> None:
        self._source = source
        self._feed = feed
        self._finish = finish
        self._clock = clock
        self._max_hold = max_hold
        self._pending: list[T] = []
        self._error: BaseException | None = None
        self._ended = False
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> ReadAhead[T]:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        completed = False
        handed_over: float | None = None  # when the loop last ran the consumer; None: no item yet
        clock, max_hold = self._clock, self._max_hold
        try:
            async for chunk in self._source:
                completed = self._feed(chunk, self._pending)
                if self._pending:
                    self._notify()
                    if handed_over is None or clock() - handed_over >= max_hold:
                        await asyncio.sleep(0)  # let the consumer take what is pending
                        handed_over = clock()
                if completed:
                    break
            await self._finish(self._pending, completed)
        except Exception as exc:  # handed to the consumer, after the items parsed before it
            self._error = exc
        finally:
            self._ended = True
            self._notify()
            close = getattr(self._source, "aclose", None)
            if close is not None:
                await close()  # a generator source runs its cleanup now, not whenever it is collected

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def next_batch(self) -> list[T] | None:
        """Every item parsed since the last call; None once the body ended and all were taken."""
        while not self._pending:
            if self._ended:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                return None
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None
        batch, self._pending = self._pending, []
        return batch

    async def aclose(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancel of the reader; if *we* are being cancelled too, keep that going.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
