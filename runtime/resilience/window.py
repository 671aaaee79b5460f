"""Sliding windows of call outcomes that a circuit breaker reads its failure rate from.

Two kinds, as in resilience4j: a count window over the last N calls (a ring buffer with a
running failure total, O(1) per call) and a time window over the last N seconds (one bucket
per whole second of the injected clock, so memory is bounded by N whatever the call rate).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class CountWindow:
    """The outcomes of the last ``size`` calls."""

    __slots__ = ("_pos", "_ring", "_size", "calls", "failures")

    def __init__(self, size: int) -> None:
        self._size = size
        self._ring = bytearray(size)
        self._pos = 0
        self.calls = 0
        self.failures = 0

    def record(self, failed: bool) -> None:
        """Add one call's outcome, pushing out the oldest once ``size`` calls are held."""
        pos = self._pos
        if self.calls == self._size:
            self.failures -= self._ring[pos]
        else:
            self.calls += 1
        self._ring[pos] = 1 if failed else 0
        self.failures += 1 if failed else 0
        self._pos = pos + 1 if pos + 1 < self._size else 0

    def totals(self) -> tuple[int, int]:
        """``(calls, failures)`` in the window."""
        return self.calls, self.failures

    def reset(self) -> None:
        """Forget every outcome."""
        self._ring = bytearray(self._size)
        self._pos = 0
        self.calls = 0
        self.failures = 0


class TimeWindow:
    """The outcomes of the calls made in the last ``seconds`` seconds."""

    __slots__ = ("_buckets", "_clock", "_seconds", "calls", "failures")

    def __init__(self, seconds: int, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._clock = clock
        # (second, calls, failures), oldest first
        self._buckets: deque[list[int]] = deque()
        self.calls = 0
        self.failures = 0

    def _expire(self, now_s: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= now_s - self._seconds:
            _, calls, failures = buckets.popleft()
            self.calls -= calls
            self.failures -= failures

    def record(self, failed: bool) -> None:
        """Add one call's outcome in the current second of the clock."""
        now_s = int(self._clock())
        self._expire(now_s)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != now_s:
            buckets.append([now_s, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        self.calls += 1
        if failed:
            bucket[2] += 1
            self.failures += 1

    def totals(self) -> tuple[int, int]:
        """``(calls, failures)`` in the last ``seconds`` seconds."""
        self._expire(int(self._clock()))
        return self.calls, self.failures

    def reset(self) -> None:
        """Forget every outcome."""
        self._buckets.clear()
        self.calls = 0
        self.failures = 0


Window = CountWindow | TimeWindow
