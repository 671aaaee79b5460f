"""Read a streamed HTTP body ahead of its consumer, handing over everything parsed so far.

Owns one task per stream that reads the body's chunks and turns them into items as they
arrive; the consumer takes *all* items parsed since its last turn as one batch. When the
consumer keeps up, a batch is one network chunk; when it falls behind (an unpaced fast
endpoint, a busy machine), a batch is whatever arrived meanwhile. The per-item costs above
it (the guard's timeout scope per item, generator hops) are then paid per batch, not per
token, without ever delaying an item that has arrived.

The first batch is read by the consumer itself, in its own task: time to first token is
what a user feels, and it pays neither a task start nor a hand-over. The task reading the
rest starts after it. ``feed`` may stop parsing a chunk as soon as it has a first item and
keep the rest back: the reading task's first act is ``resume`` (parse what was kept back),
so a first network chunk that holds the whole reply (a fast endpoint, a busy machine) costs
the first token one item's parse, not the whole reply's. A socket read finds data already queued when the endpoint is faster
than the parsing, so that task may not suspend for a whole stream; it therefore hands the
loop over on its own at least every ``max_hold`` seconds (1 ms: far below a rendered frame)
while items wait.

Errors raised while reading or parsing reach the consumer after the items parsed before
them, in order. Closing the reader cancels its task and closes the source.
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
#: ``resume(out)`` parses what ``feed`` kept back into ``out``; True means the stream is logically done.
Resume = Callable[[list[T]], bool]


class ReadAhead(Generic[T]):
    """Take batches with :meth:`next_batch` until it returns None; always :meth:`aclose`."""

    def __init__(
        self,
        source: AsyncIterator[bytes],
        feed: Feed[T],
        finish: Finish[T],
        *,
        resume: Resume[T] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        max_hold: float = MAX_HOLD,
    ) -> None:
        self._source = source
        self._feed = feed
        self._finish = finish
        self._resume = resume
        self._clock = clock
        self._max_hold = max_hold
        self._pending: list[T] = []
        self._error: BaseException | None = None
        self._completed = False  # ``feed`` said the stream is done
        self._ended = False  # nothing more will be read
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._first = True

    def start(self) -> ReadAhead[T]:
        """Nothing is read yet: the first :meth:`next_batch` reads the first items itself."""
        return self

    async def _read(self, first_only: bool) -> None:
        """Read and parse chunks into the pending items; with ``first_only``, stop as soon as
        there are some (the stream goes on in a task)."""
        completed = self._completed
        handed_over = self._clock()
        try:
            if not first_only and not completed and self._resume is not None:
                completed = self._resume(self._pending)
                if self._pending:
                    self._notify()
            while not completed:
                try:
                    chunk = await self._source.__anext__()
                except StopAsyncIteration:
                    break
                completed = self._feed(chunk, self._pending)
                if not self._pending:
                    continue
                if first_only:
                    self._completed = completed
                    return
                self._notify()
                if not completed and self._clock() - handed_over >= self._max_hold:
                    await asyncio.sleep(0)  # let the consumer take what is pending
                    handed_over = self._clock()
            await self._finish(self._pending, completed)
        except Exception as exc:  # noqa: BLE001 - any failure is handed to the consumer, after the items before it
            self._error = exc
        except BaseException:  # cancelled: the consumer is gone or closing
            await self._end()
            raise
        await self._end()

    async def _end(self) -> None:
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
        if self._first:
            self._first = False
            await self._read(first_only=True)
            if not self._ended:
                self._task = asyncio.get_running_loop().create_task(self._read(first_only=False))
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
        """Cancel the reading task and close the source; safe to call more than once.

        A cancellation of the caller itself during the close is propagated.
        """
        task = self._task
        try:
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    # Our own cancel of the reader; if *we* are being cancelled too, keep that going.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
        finally:
            if not self._ended:  # the task never ran (cancelled before its first step) or never started
                await self._end()
