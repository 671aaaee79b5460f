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
        """The event's class name (``"BreakerStateChanged"``), its ``type`` in :meth:`to_dict`."""
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (nested dataclasses too) plus ``type``: :attr:`kind`."""
        data = asdict(self)
        data["type"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class BreakerStateChanged(Event):
    """A circuit breaker moved between ``closed``, ``open`` and ``half_open``, and why."""

    name: str
    old_state: str
    new_state: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RetryScheduled(Event):
    """Guarded call to ``service``: attempt ``attempt`` failed with ``error``; the next runs in ``delay`` seconds."""

    service: str
    attempt: int
    delay: float
    error: str
    #: Attempts the call may make in all, the first included (0: not said).
    max_attempts: int = 0


@dataclass(frozen=True, kw_only=True)
class FallbackUsed(Event):
    """``service`` failed with ``error``; the answer came from ``fallback`` (``cache``, a handler, ``default``)."""

    service: str
    fallback: str
    error: str


@dataclass(frozen=True, kw_only=True)
class HealthChanged(Event):
    """Check ``name`` (or ``overall``) changed status (``healthy``/``degraded``/``unhealthy``; old None at first).

    ``latency_ms`` is the check's run time in milliseconds.
    """

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


@dataclass(frozen=True, kw_only=True)
class AlertRaised(Event):
    """An alert fired (:mod:`runtime.host.alerts`), already deduplicated: one per ``key`` per
    ``[alerts].dedup_window`` seconds in this process.

    ``category``: ``breaker_open``, ``journal_backlog``, ``server_error`` or ``recovered``;
    ``key``: the dedup key (``breaker_open:llm``); ``severity``: ``critical``, ``warning`` or
    ``info``; ``message``: the one line a person reads; ``service`` when known; ``targets``:
    how many webhooks are configured (0: the alert is only shown).
    """

    category: str
    key: str
    severity: str
    message: str
    service: str | None = None
    targets: int = 0


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
    """Synchronous publish, callback or async-iterator subscribe (see the module docstring)."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []
        self._queues: set[_QueueSubscription] = set()

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber now; never raises and never blocks.

        A callback that raises is logged and skipped; a full queue drops its oldest event.
        """
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
        """An async iterator of events (only the given kinds, or all when none are given).

        The queue holds at most ``maxsize`` events; a lagging reader loses the oldest. Stop
        iterating (or call ``close()``) to unsubscribe.
        """
        sub = _QueueSubscription(self, maxsize, kinds)
        self._queues.add(sub)
        return sub

    @property
    def has_subscribers(self) -> bool:
        """True when any callback or queue is subscribed (publishers may skip building events otherwise)."""
        return bool(self._callbacks or self._queues)


@dataclass(frozen=True, kw_only=True)
class StoreDegraded(Event):
    """The conversation store lost Redis: writes now go to the local journal."""

    store: str
    reason: str
    pending_writes: int


@dataclass(frozen=True, kw_only=True)
class StoreRecovered(Event):
    """Redis answers again and the local journal is empty: the store writes to Redis directly."""

    store: str
    degraded_seconds: float


@dataclass(frozen=True, kw_only=True)
class JournalReplayed(Event):
    """A replay of the local journal ran; ``remaining`` > 0 means it stopped part way."""

    store: str
    replayed: int
    duplicates: int
    dropped: int
    remaining: int
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class JournalDamaged(Event):
    """Damaged records were found in the local journal and moved to its quarantine file.

    ``lines`` are their 1-based line numbers in the journal as it was read; ``quarantine`` is
    the file that now holds them (with their byte offsets and raw bytes); ``message`` is the
    one line a person reads. Published once, by the process that found them: the records are
    no longer in the journal, so nobody finds them again. Every good record is still replayed.
    """

    store: str
    lines: tuple[int, ...]
    quarantine: str
    message: str


# ---------------------------------------------------------------- turn events
# One agent turn emits these, in order: UserSaved, MemoriesRecalled, then per step
# PromptBuilt, TextDelta*, (ToolCallStarted, ToolCallFinished)*, and finally AssistantSaved
# and TurnFinished (or TurnFailed). Degraded may appear anywhere a backend let the turn down.


@dataclass(frozen=True, kw_only=True)
class TurnEvent(Event):
    """Base of every event of one turn; ``turn_id`` groups them, ``conversation_id`` scopes them."""

    conversation_id: str
    turn_id: str


@dataclass(frozen=True, kw_only=True)
class UserSaved(TurnEvent):
    """The user's message is durable (in Redis, or in the local journal when ``journaled``)."""

    message_id: str
    content: str
    journaled: bool = False
    #: True for /retry: the message was already saved and is being resent, not duplicated.
    resent: bool = False


@dataclass(frozen=True, kw_only=True)
class MemoriesRecalled(TurnEvent):
    """Long-term memories recalled for the prompt (``texts`` empty when nothing matched)."""

    texts: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    latency_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PromptBuilt(TurnEvent):
    """The prompt of one step was built; ``report`` is a runtime.context PromptReport.

    Typed ``Any`` because ``core`` may not import ``context`` (the layer rule).
    """

    report: Any
    step: int = 1


@dataclass(frozen=True, kw_only=True)
class TextDelta(TurnEvent):
    """A piece of the assistant's answer as it streams."""

    text: str
    step: int = 1


@dataclass(frozen=True, kw_only=True)
class ReasoningDelta(TurnEvent):
    """A piece of a reasoning model's thinking, streamed before its answer: shown apart from
    the answer (the TUI's collapsible "thinking" block), kept in the saved message's metadata,
    never sent back to the model."""

    text: str
    step: int = 1


@dataclass(frozen=True, kw_only=True)
class TurnNotice(TurnEvent):
    """Something about this turn the user should hear that is not a failure of a backend.

    ``topic``: ``cut_off`` (the reply reached the output token limit and was saved marked as
    cut off), ``prompt_tools`` (the endpoint rejected ``tools``; they are described in the
    prompt from now on), ``no_stream`` (the endpoint does not stream; replies come whole).
    ``message`` is the sentence to show.
    """

    topic: str
    message: str


@dataclass(frozen=True, kw_only=True)
class ToolCallStarted(TurnEvent):
    """The model's tool call ``call_id`` to tool ``name`` starts, with its parsed JSON ``arguments``."""

    call_id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    step: int = 1


@dataclass(frozen=True, kw_only=True)
class ToolCallFinished(TurnEvent):
    """A tool call ended. ``status``: ok | error | denied | invalid | unknown | timeout | cancelled."""

    call_id: str
    name: str
    status: str
    #: What the model sees (capped in tokens); the full output is kept in the message metadata.
    output: str
    error: str | None = None
    truncated: bool = False
    duration_ms: float = 0.0
    step: int = 1


@dataclass(frozen=True, kw_only=True)
class AssistantSaved(TurnEvent):
    """The assistant's answer is saved; ``interrupted`` when cancelled or cut by a failure."""

    message_id: str
    content: str
    interrupted: bool = False
    journaled: bool = False
    #: Where the text came from: "llm", or a fallback's name (e.g. "cache", "notice").
    source: str = "llm"
    #: The endpoint's finish reason for the answer ("stop", "length", "content_filter", ...; "" if none).
    finish_reason: str = ""
    #: The reply's figures (:meth:`runtime.core.figures.ReplyFigures.to_dict`: tokens, time to
    #: first token, total time, tokens per second, cost), also kept in the message's metadata;
    #: None when no model call produced the reply (a fallback notice).
    figures: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Degraded(TurnEvent):
    """A backend failed and the turn went on without it (``service``: memory, redis, llm, ...)."""

    reason: str
    service: str = ""


@dataclass(frozen=True, kw_only=True)
class TurnFailed(TurnEvent):
    """The turn could not produce an answer; the user's message stays saved for /retry."""

    error: str
    error_type: str = ""
    retryable: bool = True


@dataclass(frozen=True, kw_only=True)
class TurnFinished(TurnEvent):
    """Last event of every turn. ``usage``: prompt/completion/total tokens (and ``reasoning_tokens``,
    part of the completion); ``timings``: ms per step; ``usage_source``: ``reported`` (the
    endpoint's own figures), ``estimated`` (counted here: the endpoint sent none), ``mixed``
    (steps of both kinds) or ``none`` (no model call)."""

    usage: dict[str, int] = field(default_factory=dict)
    usage_source: str = "none"
    timings: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    degraded: bool = False
    interrupted: bool = False
    failed: bool = False
    #: Why the turn ended: "answer", "max_steps", "cut_off", "cancelled", "failed", "empty", ...
    stop_reason: str = "answer"
