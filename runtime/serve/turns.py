"""Turns over HTTP: one agent per user over the runtime's shared parts, each turn in its own task.

The runtime's :class:`~runtime.agent.Agent` is bound to one user; the server has many. An agent
is only the turn logic over injected collaborators (store, LLM client, context window, tools,
memory, locks), so :meth:`TurnService.agent` builds one per user over the same collaborators,
once, and every conversation, memory recall and write is then scoped to that user.

A turn runs in its own task and hands its events to the request through a queue
(:class:`RunningTurn`): the stream can end (client gone) and cancel the turn, shutdown can find
and drain every running turn (:mod:`runtime.serve.shutdown`), and the events a request relays
are exactly the turn's (the same as ``holdfast chat --json``). Tools whose permission is "ask"
are refused: nobody is at a terminal to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from runtime.core.errors import AppError, ConflictError, NotFoundError, ServiceUnavailableError, ValidationError
from runtime.core.events import TurnEvent, TurnFailed, TurnFinished
from runtime.serve.shutdown import TurnTracker
from runtime.state import codec

if TYPE_CHECKING:
    from runtime.agent import Agent
    from runtime.host.runtime import Runtime
    from runtime.state.history import ConversationInfo

log = logging.getLogger(__name__)

#: Most per-user agents kept (each is a few small dicts; the oldest is dropped past this).
MAX_AGENTS = 4096


async def _deny(name: str, arguments: dict[str, Any]) -> str:
    """Permission answer for "ask" tools: no one can be asked over HTTP."""
    return "deny"


class RunningTurn:
    """One turn running in its task; iterate :meth:`events` once. ``on_done`` gets every event
    of the turn (also when nobody read them) once the task ends."""

    def __init__(
        self,
        events: AsyncIterator[TurnEvent],
        tracker: TurnTracker,
        on_done: Callable[[list[TurnEvent], bool], Any] | None = None,
    ) -> None:
        self._queue: asyncio.Queue[TurnEvent | BaseException | None] = asyncio.Queue()
        self.history: list[TurnEvent] = []
        #: True once the turn yielded its last event (what runs after it must not be cancelled).
        self.ended = False
        self._on_done = on_done
        self.task: asyncio.Task[None] = asyncio.create_task(self._run(events), name="serve-turn")
        tracker.add(self.task)

    async def _run(self, events: AsyncIterator[TurnEvent]) -> None:
        cancelled = False
        try:
            async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    self.history.append(event)
                    self._queue.put_nowait(event)
            self.ended = True
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the reader, who answers it
            self._queue.put_nowait(exc)
        finally:
            self._queue.put_nowait(None)
            if self._on_done is not None:
                result = self._on_done(list(self.history), cancelled)
                if asyncio.iscoroutine(result):
                    await asyncio.shield(result)

    async def first(self) -> list[TurnEvent]:
        """The events up to and including the first that is not a lock-time failure; used to
        answer "busy" as a 409 before a response starts. Raises what the turn raised."""
        taken: list[TurnEvent] = []
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)
                return taken
            if isinstance(item, BaseException):
                raise item
            taken.append(item)
            if not isinstance(item, TurnFailed):
                return taken

    async def rest(self) -> AsyncIterator[TurnEvent]:
        """The remaining events, in order; raises what the turn raised."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        """Cancel the turn (the client left): the agent keeps the partial answer, marked."""
        if not self.ended and not self.task.done():
            self.task.cancel()


class TurnService:
    """Per-user agents, conversation ownership checks, and starting turns (see the module doc)."""

    def __init__(self, runtime: Runtime, tracker: TurnTracker) -> None:
        self.runtime = runtime
        self.tracker = tracker
        self._agents: dict[str, Agent] = {}

    def agent(self, user_id: str) -> Agent:
        """The agent of ``user_id``, over the runtime's collaborators."""
        agent = self._agents.get(user_id)
        if agent is not None:
            return agent
        base = self.runtime.agent
        if user_id == base.user_id:
            agent = base
        else:
            from runtime.agent import Agent

            agent = Agent(
                base.config,
                user_id=user_id,
                store=base.store,
                llm=base.llm,
                window=base.window,
                tools=base.tools,
                runner=base.runner,
                bus=base.bus,
                memory=base.memory,
                state=base.state,
                resilience=base.resilience,
                monitor=base.monitor,
                summarizer=base.summarizer,
                locks=base.locks,
            )
        if len(self._agents) >= MAX_AGENTS:
            self._agents.pop(next(iter(self._agents)))
        self._agents[user_id] = agent
        return agent

    async def owned(self, user_id: str, conversation_id: str) -> ConversationInfo:
        """The conversation if it exists and is ``user_id``'s. NotFoundError otherwise, with the
        same message for a malformed id, a missing one and another user's (ids do not leak)."""
        try:
            codec.check_id(conversation_id, "conversation_id")
        except ValidationError:
            raise NotFoundError("conversation does not exist") from None
        try:
            info = await self.runtime.store.get(conversation_id)
        except NotFoundError:
            raise NotFoundError(f"conversation {conversation_id} does not exist") from None
        if info.user_id != user_id:
            raise NotFoundError(f"conversation {conversation_id} does not exist")
        return info

    def start(
        self,
        user_id: str,
        conversation_id: str,
        text: str,
        *,
        on_done: Callable[[list[TurnEvent], bool], Any] | None = None,
        model: str | None = None,
        message_id: str | None = None,
    ) -> RunningTurn:
        """Start a turn of ``user_id`` in ``conversation_id`` (already checked with :meth:`owned`
        or new), with the upstream ``model`` (None: the configured one) for this turn only and
        the user message saved as ``message_id`` (None: a fresh id);
        ServiceUnavailableError (503) while the server shuts down."""
        if self.tracker.closing:
            raise ServiceUnavailableError("the server is shutting down; retry on another replica", retry_after=1.0)
        events = self.agent(user_id).run_turn(
            conversation_id, text, ask_permission=_deny, model=model, user_message_id=message_id
        )
        return RunningTurn(events, self.tracker, on_done)


def brief(event: TurnEvent) -> dict[str, Any]:
    """A shallow dict of ``event`` for :func:`turn_result` (its fields plus ``type``). Nested
    values stay objects, so it is not JSON: ``Event.to_dict`` deep-copies every event (the
    prompt report too), which cost a JSON turn ~0.1 ms for fields the result never reads."""
    data = dict(event.__dict__)
    data["type"] = event.kind
    return data


def turn_result(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON answer of a finished turn (``stream: false``) from its events as dicts
    (:meth:`runtime.core.events.Event.to_dict`): ids, the saved answer, how it ended, and the
    answer's figures (tokens, times, cost: :class:`runtime.core.figures.ReplyFigures`; None for a
    fallback notice)."""
    first = events[0] if events else {}
    result: dict[str, Any] = {
        "conversation_id": first.get("conversation_id"),
        "turn_id": first.get("turn_id"),
        "user_message_id": None,
        "message_id": None,
        "content": "",
        "failed": False,
        "error": None,
        "interrupted": False,
        "degraded": False,
        "stop_reason": None,
        "usage": {},
        "timings": {},
        "figures": None,
    }
    streamed: list[str] = []
    for event in events:
        kind = event.get("type")
        if kind == "UserSaved":
            result["user_message_id"] = event["message_id"]
        elif kind == "TextDelta":
            streamed.append(str(event["text"]))
        elif kind == "AssistantSaved":
            result["message_id"] = event["message_id"]
            result["content"] = event["content"]
            result["interrupted"] = bool(event.get("interrupted"))
            result["figures"] = event.get("figures")
        elif kind == "TurnFailed":
            result["failed"] = True
            result["error"] = event.get("error")
        elif kind == "TurnFinished":
            result.update(
                failed=result["failed"] or bool(event.get("failed")),
                interrupted=result["interrupted"] or bool(event.get("interrupted")),
                degraded=bool(event.get("degraded")),
                stop_reason=event.get("stop_reason"),
                usage=dict(event.get("usage") or {}),
                timings=dict(event.get("timings") or {}),
            )
    if result["message_id"] is None and streamed:
        result["content"] = "".join(streamed)
    return result


def busy_error(events: list[TurnEvent]) -> AppError | None:
    """The 409 for a turn refused at its lock (another turn runs in the conversation), else None."""
    for event in events:
        if isinstance(event, TurnFinished) and event.stop_reason == "busy":
            failed = next((e for e in events if isinstance(e, TurnFailed)), None)
            return ConflictError(failed.error if failed else "another turn is running in this conversation")
    return None
