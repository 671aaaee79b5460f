"""Per-call timeouts for one guard, with one event-loop timer per guard instead of one per call.

``asyncio.timeout`` schedules and cancels a ``TimerHandle`` for every call; measured here it
costs ~9 us, twice the whole guard's budget. Every call through a guard has the same
timeout, so deadlines expire in start order: a FIFO of tickets and a single timer armed for
the oldest live ticket does the same job for a deque append and a flag.

When a ticket expires its task is cancelled (as ``asyncio.timeout`` does); the guard sees the
``CancelledError``, calls :meth:`DeadlineWatch.finish`, and if the ticket expired and the task
was not also cancelled by someone else (``Task.uncancel`` accounting), raises a timeout
error instead. External cancellation always propagates.
"""

from __future__ import annotations

import asyncio
from asyncio import current_task as _current_task
from asyncio import get_running_loop as _get_running_loop
from collections import deque
from time import monotonic as _monotonic

# Deadlines use time.monotonic and timers use call_later, so this works on any event loop
# (uvloop's loop.time() is not time.monotonic()).


# A ticket is a list, not an object: building a slotted instance costs more than the rest
# of the bookkeeping together. Fields by index:
_DEADLINE, _TASK, _CANCELLING, _DONE, _EXPIRED = range(5)
Ticket = list  # [deadline, task, task.cancelling() at start, done, expired]


class DeadlineWatch:
    """Cancels calls that outlive ``timeout`` seconds, with one timer for all of them.

    Use from inside an asyncio task: ``ticket = watch.start()``, await the call, then
    ``watch.finish(ticket)`` whatever happened.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tickets: deque[Ticket] = deque()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> Ticket:
        """Begin timing the current task's call; returns the ticket to pass to :meth:`finish`.

        Raises:
            RuntimeError: not called from inside an asyncio task.
        """
        loop = _get_running_loop()
        task = _current_task(loop)
        if task is None:
            raise RuntimeError("a guarded call must run inside an asyncio task")
        if loop is not self._loop:
            # A previous event loop (tests run one per test) left tickets that can never fire.
            self._tickets.clear()
            self._handle = None
            self._loop = loop
        ticket = [_monotonic() + self.timeout, task, task.cancelling(), False, False]
        self._tickets.append(ticket)
        if self._handle is None:
            self._handle = loop.call_later(self.timeout, self._fire)
        return ticket

    def finish(self, ticket: Ticket) -> bool:
        """Stop timing; True when the call ran out of time and its cancellation is ours.

        When True, the task's pending cancellation has been withdrawn (``uncancel``).
        """
        ticket[_DONE] = True
        tickets = self._tickets
        while tickets and tickets[0][_DONE]:
            tickets.popleft()
        if not ticket[_EXPIRED]:
            return False
        return ticket[_TASK].uncancel() <= ticket[_CANCELLING]

    def _fire(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        now = _monotonic()
        tickets = self._tickets
        while tickets:
            ticket = tickets[0]
            if ticket[_DONE]:
                tickets.popleft()
                continue
            if ticket[_DEADLINE] > now:
                break
            tickets.popleft()
            ticket[_EXPIRED] = True
            ticket[_TASK].cancel(f"timed out after {self.timeout:g}s")
        if tickets:
            self._handle = loop.call_later(max(tickets[0][_DEADLINE] - now, 0.0), self._fire)

    @property
    def in_flight(self) -> int:
        """Calls started and not yet finished."""
        return sum(1 for t in self._tickets if not t[_DONE])
