"""Typed runtime events and the small in-process pub/sub that carries them.

The runtime emits events (breaker transitions, retries, fallbacks, health changes, turn
progress); the UI and the log subscribe. Publishing is synchronous and never blocks the
publisher: callback subscribers run inline (their exceptions are logged, not raised) and
queue subscribers get a bounded queue that drops its oldest event when a reader lags.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base event. ``at`` is wall-clock time for display only, never for logic."""

    at: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class BreakerStateChanged(Event):
    name: str
    old_state: str
    new_state: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RetryScheduled(Event):
    service: str
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, kw_only=True)
class FallbackUsed(Event):
    service: str
    fallback: str
    error: str


@dataclass(frozen=True, kw_only=True)
class HealthChanged(Event):
    name: str
    old_status: str | None
    new_status: str
    detail: str = ""
    latency_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class BackendStatus(Event):
    """An embedded backend started, stopped or failed (redis-server, demo LLM)."""

    name: str
    status: str  # starting | running | stopped | failed
    pid: int | None = None
    address: str = ""
    detail: str = ""


E = TypeVar("E", bound=Event)
Callback = Callable[[Event], None]


class _QueueSubscription:
    def __init__(self, bus: EventBus, maxsize: int, kinds: tuple[type[Event], ...]) -> None:
        self._bus = bus
        self._kinds = kinds
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)

    def offer(self, event: Event) -> None:
        if self._kinds and not isinstance(event, self._kinds):
            return
        if self.queue.full():
            # A slow reader loses the oldest event, never blocks the publisher.
            self.queue.get_nowait()
        self.queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.close()

    def close(self) -> None:
        self._bus._queues.discard(self)


class EventBus:
    """Synchronous publish, callback or async-iterator subscribe."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []
        self._queues: set[_QueueSubscription] = set()

    def publish(self, event: Event) -> None:
        for callback in tuple(self._callbacks):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the publisher
                log.exception("event subscriber failed on %s", event.kind)
        for sub in tuple(self._queues):
            sub.offer(event)

    def add_listener(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` inline for every event; returns an unsubscribe function."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def subscribe(self, *kinds: type[Event], maxsize: int = 1000) -> _QueueSubscription:
        """An async iterator of events (optionally only the given kinds)."""
        sub = _QueueSubscription(self, maxsize, kinds)
        self._queues.add(sub)
        return sub

    @property
    def has_subscribers(self) -> bool:
        return bool(self._callbacks or self._queues)
