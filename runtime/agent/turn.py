"""The turn pipeline: save -> recall -> build prompt -> LLM <-> tools -> save.

:meth:`Agent.run_turn` is an async iterator of typed turn events (runtime.core.events):
``UserSaved``, ``MemoriesRecalled``, per step ``PromptBuilt``, ``TextDelta``,
``ToolCallStarted``/``ToolCallFinished``, then ``AssistantSaved`` and ``TurnFinished``
(``TurnFailed`` before it when no answer could be made; ``Degraded`` wherever a backend let
the turn down). Every event is also published on the bus.

Guarantees:

* The user's message is saved before anything else (Redis, or the local journal).
* Memory recall is optional: its failure marks the turn degraded and the turn goes on.
* Each assistant step with tool calls is saved before its tools run; tool results are saved
  in call order; a cancelled step gets "cancelled" results so history stays well formed.
* The answer is saved even when cut short: on cancel (Esc) or a broken stream the partial
  text is kept, marked ``interrupted``. A reply the endpoint ended at a length limit
  (``finish_reason: "length"``: its output limit, or a full context window) is saved with a
  visible :func:`cut_off_note` that names which, and a ``TurnNotice``; later prompts send it
  without the note; one stopped by a content filter (or an ``error`` in the stream) is a failure
  with the partial text kept, marked and hidden from later prompts; an empty answer (a
  reasoning model that only thought) is not saved as an answer and the turn fails.
* A reasoning model's thinking is streamed as ``ReasoningDelta`` events and kept in the saved
  answer's ``metadata.reasoning``; it is never sent back to the model.
* Every tool call the model made is run and answered exactly once: call ids are made unique
  within the turn before they are stored.
* An LLM outage answers with the fallback (a cached answer, or a notice); the user's message
  stays saved and :meth:`Agent.retry_turn` resends it later without saving it twice.
  Fallback notices and broken partial answers are hidden from later prompts
  (``metadata.hidden``), so the model never reads them as its own words.
* Turns on one conversation are queued (see :mod:`runtime.agent.turn_lock`), never interleaved.
* Memories are written and summarisation runs after the answer is saved, in the background,
  so they never delay the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from runtime.agent.turn_lock import TurnBusyError, TurnLocks
from runtime.config import Config
from runtime.context.attachments import Attachment, AttachmentFigure
from runtime.context.window import RECENT_PAGE, ContextWindowManager
from runtime.core.errors import AppError, AuthorizationError, NotFoundError, ValidationError, describe
from runtime.core.events import (
    AssistantSaved,
    Degraded,
    EventBus,
    MemoriesRecalled,
    PromptBuilt,
    ReasoningDelta,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFailed,
    TurnFinished,
    TurnNotice,
    UserSaved,
)
from runtime.core.figures import FIGURES_KEY, ReplyFigures
from runtime.core.logs import log_context
from runtime.core.messages import ChatMessage, ConversationSummary, ToolCall
from runtime.core.variants import CHOICE_PREFIX, choice_value, choices_from, variant_ids
from runtime.state.conversations import HIDDEN
from runtime.tools import AskPermission, ToolContext, ToolRegistry
from runtime.tools.runner import ToolResult, ToolRunner

if TYPE_CHECKING:
    from runtime.context.summarize import Summarizer, SummarizeResult
    from runtime.llm import LLMClient
    from runtime.llm.stream_events import FallbackReply, StreamInterrupted
    from runtime.memory import VectorMemoryStore
    from runtime.resilience import HealthMonitor, Resilience
    from runtime.state.conversations import ConversationStore
    from runtime.state.store import RedisStateStore

log = logging.getLogger(__name__)

T = TypeVar("T")


def new_turn_id() -> str:
    """A fresh turn id: ``turn_`` and 16 hex digits (64 random bits)."""
    return "turn_" + secrets.token_hex(8)


def max_steps_note(steps: int) -> str:
    """The note appended to an answer cut at the step limit (``[agent].max_steps``)."""
    return (
        f"[Stopped after {steps} steps, the limit for one turn; the last requested tools were not run. "
        "Ask me to continue if you want me to go on.]"
    )


def cut_off_note(max_tokens: int, completion_tokens: int | None = None) -> str:
    """The marker appended to an answer the endpoint cut at a length limit (``finish_reason: "length"``).

    ``max_tokens`` is the request's output limit (``[llm].max_output_tokens``) and
    ``completion_tokens`` what the reply used (reported, or counted). A reply that stopped well
    short of the output limit was cut by the server's context window (Ollama's ``num_ctx``,
    llama.cpp's ``--ctx-size``: prompt and reply share it), and the marker says so instead of
    naming a limit the reply never reached.
    """
    if not _short_of_output_limit(max_tokens, completion_tokens):
        return f"[cut off: the reply reached the output limit of {max_tokens} tokens]"
    return f"[cut off after {completion_tokens} tokens: the endpoint's context window is full]"


def cut_off_notice(max_tokens: int, completion_tokens: int | None = None) -> str:
    """The ``TurnNotice`` text for a reply cut at a length limit (see :func:`cut_off_note`)."""
    if not _short_of_output_limit(max_tokens, completion_tokens):
        return (
            f"the reply was cut off at the output limit ({max_tokens} tokens, [llm].max_output_tokens); "
            "ask the model to continue"
        )
    return (
        f"the reply was cut off after {completion_tokens} tokens, short of [llm].max_output_tokens "
        f"({max_tokens}): the prompt and the reply filled the endpoint's context window (raise it on the "
        "server, e.g. Ollama's num_ctx or llama.cpp's --ctx-size, or start a new conversation); "
        "ask the model to continue"
    )


def _short_of_output_limit(max_tokens: int, completion_tokens: int | None) -> bool:
    # Counted (estimated) figures may be a tokenizer off the model's: within 10 % is the limit.
    return completion_tokens is not None and completion_tokens < max_tokens * 0.9


#: What a reply stopped by the provider's content filter is marked with (kept, hidden from the model).
CONTENT_FILTER_ERROR = "the LLM provider's content filter stopped the reply"


class HistorySource(Protocol):
    """What :class:`PromptHistory` reads: the conversation store's tail, summary and newest page
    (:class:`runtime.state.conversations.ConversationStore`)."""

    async def read_tail(self, conversation_id: str, limit: int, *, before_seq: int | None = None) -> list[ChatMessage]:
        """Up to ``limit`` newest messages (oldest first), older than ``before_seq`` when given."""
        ...

    async def get_summary(self, conversation_id: str) -> ConversationSummary | None:
        """The summary standing in for archived history, or None."""
        ...

    async def read_recent(
        self, conversation_id: str, limit: int
    ) -> tuple[ConversationSummary | None, list[ChatMessage]]:
        """The summary and up to ``limit`` newest messages, in one read."""
        ...


#: The cut-off marker at the end of a saved answer (:func:`cut_off_note`), with its separator.
_CUT_OFF_NOTE_RE = re.compile(r"\n\n\[cut off[^\n\]]*\]\Z")


def _as_sent(message: ChatMessage) -> ChatMessage:
    """``message`` as the model reads it: a reply cut at a length limit without our cut-off
    marker, so the model does not take the marker for its own words and ``/continue`` goes on
    from its last real token (the marker stays in the stored, shown text)."""
    if not message.metadata.get("cut_off"):
        return message
    return message.with_updates(content=_CUT_OFF_NOTE_RE.sub("", message.content), token_count=None)


class PromptHistory:
    """The conversation as the model should see it: a HistoryReader over the store that
    skips hidden messages (fallback notices, partial answers of failed attempts) and earlier
    variants a ``/retry`` replaced (:func:`runtime.core.variants.variant_ids`; ``resending``
    names the retry turn running in a conversation), refilling pages so paging callers still
    get full pages until the real start.

    ``read_recent`` (summary and newest page together) serves a snapshot primed by
    :meth:`prefetch` once, so a turn's history read can overlap its memory recall."""

    def __init__(self, store: HistorySource) -> None:
        self.store = store
        self._primed: dict[str, tuple[int, tuple[ConversationSummary | None, list[ChatMessage]]]] = {}
        #: conversation id -> the retry turn running in it (its user message's earlier replies are variants).
        self.resending: dict[str, str] = {}
        #: conversation id -> its settings (``ConversationInfo.settings``: the chosen model, the
        #: reply variants the user picked), loaded with the conversation by the turn runner.
        self.settings: dict[str, dict[str, str]] = {}

    def _visible(self, conversation_id: str, page: list[ChatMessage], newest: bool) -> list[ChatMessage]:
        choices = choices_from(self.settings.get(conversation_id, {}))
        replaced = variant_ids(page, self.resending.get(conversation_id) if newest else None, choices)
        return [_as_sent(m) for m in page if not m.metadata.get(HIDDEN) and m.id not in replaced]

    async def read_tail(self, conversation_id: str, limit: int, *, before_seq: int | None = None) -> list[ChatMessage]:
        """Up to ``limit`` visible messages, oldest first, ending before ``before_seq`` (None: newest)."""
        kept: list[ChatMessage] = []
        before = before_seq
        while True:
            page = await self.store.read_tail(conversation_id, limit, before_seq=before)
            kept = self._visible(conversation_id, page, before is None) + kept
            if len(kept) >= limit or len(page) < limit or not page or page[0].seq in (None, 0):
                return kept[-limit:]
            before = page[0].seq

    async def get_summary(self, conversation_id: str) -> ConversationSummary | None:
        """The conversation's current summary, or None."""
        return await self.store.get_summary(conversation_id)

    async def prefetch(self, conversation_id: str, limit: int) -> None:
        """Read summary and tail now and keep them for the next ``read_recent`` of up to ``limit``."""
        self._primed[conversation_id] = (limit, await self._fetch_recent(conversation_id, limit))

    def drop_prefetched(self, conversation_id: str) -> None:
        """Forget a prefetched snapshot the turn did not use."""
        self._primed.pop(conversation_id, None)

    async def read_recent(
        self, conversation_id: str, limit: int
    ) -> tuple[ConversationSummary | None, list[ChatMessage]]:
        """The summary and up to ``limit`` newest visible messages (a primed snapshot if one fits)."""
        primed = self._primed.pop(conversation_id, None)
        if primed is not None and primed[0] >= limit:
            summary, page = primed[1]
            return summary, page[-limit:]
        return await self._fetch_recent(conversation_id, limit)

    async def _fetch_recent(
        self, conversation_id: str, limit: int
    ) -> tuple[ConversationSummary | None, list[ChatMessage]]:
        summary, page = await self.store.read_recent(conversation_id, limit)
        kept = self._visible(conversation_id, page, True)
        if len(kept) < limit and len(page) >= limit and page and page[0].seq not in (None, 0):
            kept = await self.read_tail(conversation_id, limit - len(kept), before_seq=page[0].seq) + kept
        return summary, kept


#: The title of a conversation no user message has named yet.
DEFAULT_TITLE = "New conversation"


def _figure_fields(figures: Sequence[AttachmentFigure], path: str) -> dict[str, object]:
    """What the stored message records of how a file fit its prompt: tokens sent, truncated."""
    for figure in figures:
        if figure.path == path:
            return {"tokens_sent": figure.tokens, "truncated": figure.truncated}
    return {}


def title_from(text: str) -> str:
    """A conversation title from its first user message: whitespace collapsed, at most 60
    characters; DEFAULT_TITLE when the text is blank."""
    return " ".join(text.split())[:60] or DEFAULT_TITLE


@dataclass
class _Turn:
    conversation_id: str
    turn_id: str
    started: float = 0.0
    user_text: str = ""
    user_message_id: str = ""
    #: The id the user's message is to be saved under (None: a fresh one); see run_turn.
    new_message_id: str | None = None
    system_prompt: str = ""
    memories: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0}
    )
    timings: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    degraded: bool = False
    saved: bool = False
    #: Thinking of the current step (reasoning models), kept in the answer's metadata.
    reasoning: list[str] = field(default_factory=list)
    #: Kinds of usage figures the steps had: "reported" and/or "estimated".
    usage_kinds: set[str] = field(default_factory=set)
    #: Tool-call ids used so far in this turn (each call gets its own).
    call_ids: set[str] = field(default_factory=set)
    #: Tool calls of the current step without a saved result yet (filled on cancel).
    open_calls: list[ToolCall] = field(default_factory=list)
    #: The history read started alongside memory recall (it does not depend on it).
    prefetch: asyncio.Future[None] | None = None
    #: The model this turn asks for (None: the client's current one, see ``/model``).
    model: str | None = None
    #: Clock time of the model's first streamed token in this turn (None: none yet).
    first_token_at: float | None = None
    #: Seconds the model spent streaming, first token to end of stream, summed over steps.
    streaming_s: float = 0.0
    #: Files sent with the user's message (``@path``): in every step's prompt of this turn.
    attachments: tuple[Attachment, ...] = ()

    def timed(self, name: str, started: float, now: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + (now - started) * 1000.0, 3)


class Agent:
    """Runs turns. Built by :class:`runtime.host.runtime.Runtime`; every collaborator is injected.

    ``store`` keeps the conversation, ``llm`` streams replies, ``window`` builds each step's
    prompt, ``tools``/``runner`` run tool calls. Optional: ``bus`` (every event is published on
    it), ``memory`` (recall and remember; None when disabled), ``state``, ``resilience`` and
    ``monitor`` (handed to tools through their ToolContext), ``summarizer`` (after-turn
    summaries), ``locks`` (one turn per conversation; default: process-local only), ``clock``
    (seconds, for the turn timings).
    """

    def __init__(
        self,
        config: Config,
        *,
        user_id: str,
        store: ConversationStore,
        llm: LLMClient,
        window: ContextWindowManager,
        tools: ToolRegistry,
        runner: ToolRunner,
        bus: EventBus | None = None,
        memory: VectorMemoryStore | None = None,
        state: RedisStateStore | None = None,
        resilience: Resilience | None = None,
        monitor: HealthMonitor | None = None,
        summarizer: Summarizer | None = None,
        locks: TurnLocks | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.user_id = user_id
        self.store = store
        self.history = PromptHistory(store)
        self.llm = llm
        self.window = window
        self.tools = tools
        self.runner = runner
        self.bus = bus
        self.memory = memory
        self.state = state
        self.resilience = resilience
        self.monitor = monitor
        self.summarizer = summarizer
        self.locks = locks or TurnLocks(None, ttl=config.agent.turn_lock_timeout, wait=config.agent.turn_lock_timeout)
        self._clock = clock
        self._known: dict[str, str] = {}  # conversation id -> system prompt
        #: Conversations still titled DEFAULT_TITLE (made by /system or /retry before any message):
        #: their next user message gives them a title.
        self._untitled: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ public

    async def new_conversation(self, title: str = DEFAULT_TITLE) -> str:
        """Create a conversation for this user with the configured system prompt; returns its id."""
        conv_id = await self.store.create(self.user_id, title=title, system_prompt=self.config.agent.system_prompt)
        self._known[conv_id] = self.config.agent.system_prompt
        self.history.settings[conv_id] = {}
        return conv_id

    def run_turn(
        self,
        conversation_id: str,
        user_text: str,
        *,
        ask_permission: AskPermission | None = None,
        model: str | None = None,
        user_message_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        """Run one turn for ``user_text``; iterate the events (close the iterator to cancel).

        ``model``: the upstream model of this turn only (``holdfast serve``'s
        ``holdfast/<model>``); None uses the client's current one, which ``/model`` sets for
        every later turn of the process. Summaries keep the current one.
        ``user_message_id``: the id to save the user's message under (``holdfast serve`` derives
        it from the Idempotency-Key, so a turn run again after a crashed replica stores it once);
        None: a fresh one.
        ``attachments``: files the user attached (``@path``, resolved by the caller with
        :func:`runtime.context.attachments.resolve_attachments`); their text goes into this
        turn's prompts as their own section, and the stored message records them
        (``metadata.attachments``: path, bytes, tokens), not their text."""
        return self._run(conversation_id, user_text, None, ask_permission, model, user_message_id, tuple(attachments))

    def retry_turn(
        self, conversation_id: str, *, ask_permission: AskPermission | None = None
    ) -> AsyncGenerator[TurnEvent, None]:
        """Resend the conversation's last user message (already saved: not saved again)."""
        return self._run(conversation_id, None, True, ask_permission)

    async def wait_background(self) -> None:
        """Wait for memory writes and summaries started by finished turns (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def summarize_now(self, conversation_id: str, *, force: bool = False) -> SummarizeResult | None:
        """Summarise the conversation's older part if it passes ``[context].summarize_at``, or
        with ``force`` below it too (None when nothing was due). Raises ValidationError when no
        summarizer is configured."""
        if self.summarizer is None:
            raise ValidationError("summaries are not configured for this agent")
        return await self.summarizer.maybe_summarize(conversation_id, force=force)

    async def aclose(self) -> None:
        """Cancel background memory writes and summaries (shutdown)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*list(self._background), return_exceptions=True)

    # ------------------------------------------------------------ the turn

    def _emit(self, event: TurnEvent) -> TurnEvent:
        if self.bus is not None:
            self.bus.publish(event)
        return event

    async def _run(
        self,
        conversation_id: str,
        user_text: str | None,
        resend: bool | None,
        ask: AskPermission | None,
        model: str | None = None,
        user_message_id: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        """The turn, with its ids on every log record written while it runs."""
        turn_id = new_turn_id()
        with log_context(turn_id=turn_id, conversation_id=conversation_id):
            async with contextlib.aclosing(
                self._turn(conversation_id, turn_id, user_text, resend, ask, model, user_message_id, attachments)
            ) as events:
                async for event in events:
                    yield event

    async def _turn(
        self,
        conversation_id: str,
        turn_id: str,
        user_text: str | None,
        resend: bool | None,
        ask: AskPermission | None,
        model: str | None = None,
        user_message_id: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        started = self._clock()
        turn = _Turn(
            conversation_id, turn_id, started, new_message_id=user_message_id, model=model, attachments=attachments
        )
        emit = self._emit
        try:
            lock = await self.locks.acquire(conversation_id)
        except TurnBusyError as exc:
            # Not retryable: this message was never saved, so /retry would resend the other
            # turn's message instead of this one.
            yield emit(
                TurnFailed(
                    conversation_id=conversation_id,
                    turn_id=turn.turn_id,
                    error=exc.user_message() + "; your message was not sent",
                    error_type=exc.error_type.value,
                    retryable=False,
                )
            )
            yield emit(self._finished(turn, started, failed=True, stop_reason="busy"))
            return
        turn.timed("lock_ms", started, self._clock())
        finished = False
        stop_reason = "answer"
        try:
            if lock.degraded_reason:
                turn.degraded = True
                yield emit(
                    Degraded(
                        conversation_id=conversation_id,
                        turn_id=turn.turn_id,
                        reason=lock.degraded_reason,
                        service="redis",
                    )
                )
            # 1. the user's message, first
            try:
                async with contextlib.aclosing(self._save_user(turn, user_text)) as events:
                    async for event in events:
                        yield emit(event)
            except AppError as exc:
                yield emit(
                    TurnFailed(
                        conversation_id=conversation_id,
                        turn_id=turn.turn_id,
                        error=exc.user_message(),
                        error_type=exc.error_type.value,
                        retryable=exc.retryable,
                    )
                )
                finished = True
                yield emit(self._finished(turn, started, failed=True, stop_reason="failed"))
                return
            # 2. memories, while the history tail is read (the read needs only the saved message)
            turn.prefetch = asyncio.ensure_future(self.history.prefetch(conversation_id, RECENT_PAGE))
            async with contextlib.aclosing(self._recall(turn)) as events:
                async for event in events:
                    yield emit(event)
            # 3-4. prompt, model, tools
            async with contextlib.aclosing(self._steps(turn, ask)) as events:
                async for event in events:
                    if isinstance(event, TurnFinished):
                        finished = True
                    yield emit(event)
            stop_reason = "done"
        except (asyncio.CancelledError, GeneratorExit):
            if not finished:
                await asyncio.shield(self._on_cancel(turn, started))
            raise
        finally:
            if turn.prefetch is not None:
                turn.prefetch.cancel()
                # Nobody awaits it now: retrieve its outcome so a failed read is not reported
                # as "Task exception was never retrieved".
                turn.prefetch.add_done_callback(_retrieve)
            self.history.drop_prefetched(conversation_id)
            if self.history.resending.get(conversation_id) == turn.turn_id:
                del self.history.resending[conversation_id]
            await asyncio.shield(lock.release())
            if stop_reason == "done" and turn.saved:
                self._after_turn(turn)

    async def _save_user(self, turn: _Turn, user_text: str | None) -> AsyncGenerator[TurnEvent, None]:
        t0 = self._clock()
        turn.system_prompt = await self._conversation(turn.conversation_id, user_text or "")
        if turn.model is None:  # the model chosen for this conversation, if any (``/model``)
            turn.model = self.history.settings.get(turn.conversation_id, {}).get("model") or None
        if user_text is None:
            message = await self._last_user_message(turn.conversation_id)
            turn.user_text, turn.user_message_id = message.content, message.id
            # The replies to it so far (an interrupted or failed one) become earlier variants.
            self.history.resending[turn.conversation_id] = turn.turn_id
            resent = True
        else:
            if not user_text.strip():
                raise ValidationError("the message is empty")
            metadata: dict[str, object] = {"turn_id": turn.turn_id}
            if turn.attachments:  # which files and how they fit, not their text (runtime.context.attachments)
                figures = self.window.attachment_figures(
                    turn.system_prompt,
                    self.tools.schemas() or None,
                    user_text,
                    turn.attachments,
                    native_tools=self.llm.tools_supported,
                )
                metadata["attachments"] = [
                    {**a.metadata(self.window.counter), **_figure_fields(figures, a.path)} for a in turn.attachments
                ]
            saved = await self.store.add_message(
                turn.conversation_id,
                "user",
                user_text,
                metadata=metadata,
                message_id=turn.new_message_id,
            )
            turn.user_text, turn.user_message_id = user_text, saved.id
            resent = False
        if turn.conversation_id in self._untitled and title_from(turn.user_text) != DEFAULT_TITLE:
            await self._title_from_message(turn.conversation_id, turn.user_text)
        journaled = bool(self.store.degraded)
        turn.timed("save_user_ms", t0, self._clock())
        yield UserSaved(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            message_id=turn.user_message_id,
            content=turn.user_text,
            journaled=journaled,
            resent=resent,
        )
        if journaled:
            turn.degraded = True
            yield Degraded(
                conversation_id=turn.conversation_id,
                turn_id=turn.turn_id,
                service="redis",
                reason=f"{self.store.degraded_reason or 'Redis is unreachable'}: the conversation is kept "
                "in the local journal and will be replayed when Redis takes writes again",
            )

    async def set_system_prompt(self, conversation_id: str, prompt: str) -> None:
        """Store a new system prompt for the conversation; this process's next turn uses it
        (another process picks it up when it next loads the conversation)."""
        try:
            await self.store.set_system_prompt(conversation_id, prompt)
        except NotFoundError:  # a new conversation with no message yet: create it with this prompt
            await self.store.create(
                self.user_id, title=DEFAULT_TITLE, system_prompt=prompt, conversation_id=conversation_id
            )
            self._untitled.add(conversation_id)
        self._known[conversation_id] = prompt

    async def set_conversation_model(self, conversation_id: str, model: str) -> None:
        """Use ``model`` for every later turn of the conversation (stored with it, so it holds
        after a restart and in other processes that load it afterwards); an empty ``model`` goes
        back to the client's current one. A conversation with no message yet is created."""
        await self._conversation(conversation_id, "")
        await self.store.set_setting(conversation_id, "model", model.strip())
        self.history.settings.setdefault(conversation_id, {})["model"] = model.strip()

    async def choose_variant(self, conversation_id: str, user_message_id: str, turn_id: str, latest_turn: str) -> None:
        """Make the reply of ``turn_id`` the answer to ``user_message_id``: later prompts send it
        instead of the others (:mod:`runtime.core.variants`); ``latest_turn`` is the newest turn
        answering that message now (a later retry makes its own reply the answer again)."""
        await self._conversation(conversation_id, "")
        name, value = CHOICE_PREFIX + user_message_id, choice_value(turn_id, latest_turn)
        await self.store.set_setting(conversation_id, name, value)
        self.history.settings.setdefault(conversation_id, {})[name] = value

    async def _title_from_message(self, conversation_id: str, text: str) -> None:
        """Title a conversation still called DEFAULT_TITLE from its first user message (a failed
        rename is logged: the turn goes on)."""
        try:
            await self.store.rename(conversation_id, title_from(text))
        except AppError as exc:
            log.info("could not title conversation %s: %s", conversation_id, describe(exc))
            return
        self._untitled.discard(conversation_id)

    async def _conversation(self, conversation_id: str, first_text: str) -> str:
        """The conversation's system prompt, creating the conversation on first use."""
        known = self._known.get(conversation_id)
        if known is not None and conversation_id in self.history.settings:
            return known
        try:
            info = await self.store.get(conversation_id)
        except NotFoundError:
            info = None
        except AppError:
            if not self.store.degraded:
                raise
            info = None  # Redis is out and the conversation is not cached: create it (journaled, idempotent)
        if info is None:
            title = title_from(first_text)
            if title == DEFAULT_TITLE:
                self._untitled.add(conversation_id)
            await self.store.create(
                self.user_id,
                title=title,
                system_prompt=self.config.agent.system_prompt,
                conversation_id=conversation_id,
            )
            prompt = self.config.agent.system_prompt
            self.history.settings[conversation_id] = {}
        else:
            if info.user_id != self.user_id:
                raise AuthorizationError(f"conversation {conversation_id} belongs to another user")
            prompt = info.system_prompt or self.config.agent.system_prompt
            if info.title == DEFAULT_TITLE:
                self._untitled.add(conversation_id)
            self.history.settings[conversation_id] = dict(info.settings)
        self._known[conversation_id] = prompt
        return prompt

    async def _last_user_message(self, conversation_id: str) -> ChatMessage:
        before: int | None = None
        for _ in range(8):  # a turn with many tool steps puts the user message far back
            page = await self.store.read_tail(conversation_id, 64, before_seq=before)
            for message in reversed(page):
                if message.role == "user":
                    return message
            if len(page) < 64 or not page or page[0].seq in (None, 0):
                break
            before = page[0].seq
        raise NotFoundError("there is no user message to retry in this conversation")

    async def _recall(self, turn: _Turn) -> AsyncGenerator[TurnEvent, None]:
        if self.memory is None or not self.config.memory.enabled:
            return
        t0 = self._clock()
        reason = ""
        texts: tuple[str, ...] = ()
        scores: tuple[float, ...] = ()
        try:
            recall = await self.memory.recall(self.user_id, turn.user_text)
        except AppError as exc:
            reason = describe(exc)
        else:
            texts = tuple(m.formatted() for m in recall.memories)
            scores = tuple(float(m.score or 0.0) for m in recall.memories)
            # A configured lexical embedder is "degraded" by design; only an outage has a reason.
            if recall.degraded and recall.reason:
                reason = recall.reason
        turn.memories = list(texts)
        turn.timed("recall_ms", t0, self._clock())
        yield MemoriesRecalled(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            texts=texts,
            scores=scores,
            latency_ms=turn.timings["recall_ms"],
        )
        if reason:
            turn.degraded = True
            yield Degraded(
                conversation_id=turn.conversation_id,
                turn_id=turn.turn_id,
                service="memory",
                reason=f"memory offline: {reason}",
            )

    async def _steps(self, turn: _Turn, ask: AskPermission | None) -> AsyncGenerator[TurnEvent, None]:
        from runtime.llm.stream_events import (
            FallbackReply,
            Finish,
            Notice,
            StreamInterrupted,
            ToolCallError,
            ToolCallReady,
            Usage,
        )
        from runtime.llm.stream_events import ReasoningDelta as LLMReasoning
        from runtime.llm.stream_events import TextDelta as LLMText
        from runtime.llm.tool_assembly import with_unique_ids

        conv, tid = turn.conversation_id, turn.turn_id
        max_steps = self.config.agent.max_steps
        schemas = self.tools.schemas()
        for step in range(1, max_steps + 1):
            turn.steps = step
            t0 = self._clock()
            if turn.prefetch is not None:
                prefetch, turn.prefetch = turn.prefetch, None
                try:
                    await prefetch
                except AppError as exc:  # the prompt's own read below retries and reports it
                    log.debug("history prefetch failed: %s", describe(exc))
            try:
                built = await self.window.build_prompt(
                    turn.system_prompt,
                    conv,
                    schemas or None,
                    turn.memories,
                    reader=self.history,
                    native_tools=self.llm.tools_supported,  # it may have learnt the endpoint rejects tools
                    attachments=turn.attachments,
                )
            except AppError as exc:
                yield TurnFailed(
                    conversation_id=conv,
                    turn_id=tid,
                    error=exc.user_message(),
                    error_type=exc.error_type.value,
                    retryable=exc.retryable,
                )
                yield self._finished(turn, None, failed=True, stop_reason="failed")
                return
            turn.timed("prompt_ms", t0, self._clock())
            yield PromptBuilt(conversation_id=conv, turn_id=tid, report=built.report, step=step)

            t0 = self._clock()
            step_text: list[str] = []
            calls: list[ToolCall] = []
            fallback: FallbackReply | None = None
            interrupted: StreamInterrupted | None = None
            finish_reason = ""
            step_completion: int | None = None
            turn.text = step_text
            turn.reasoning = []
            step_first: float | None = None
            async with _closing(self.llm.stream_chat(built.messages, built.tools, model=turn.model)) as stream:
                try:
                    async for event in stream:
                        if step_first is None and isinstance(event, (LLMText, LLMReasoning, ToolCallReady)):
                            step_first = self._clock()
                            if turn.first_token_at is None:
                                turn.first_token_at = step_first
                        if isinstance(event, LLMText):
                            step_text.append(event.text)
                            yield TextDelta(conversation_id=conv, turn_id=tid, text=event.text, step=step)
                        elif isinstance(event, LLMReasoning):
                            turn.reasoning.append(event.text)
                            yield ReasoningDelta(conversation_id=conv, turn_id=tid, text=event.text, step=step)
                        elif isinstance(event, (ToolCallReady, ToolCallError)):
                            calls.append(event.call)
                        elif isinstance(event, Usage):
                            turn.usage["prompt_tokens"] += event.prompt_tokens
                            turn.usage["completion_tokens"] += event.completion_tokens
                            turn.usage["total_tokens"] += event.total_tokens
                            turn.usage["reasoning_tokens"] += event.reasoning_tokens
                            turn.usage_kinds.add("estimated" if event.estimated else "reported")
                            if event.reasoning_estimated:
                                turn.usage_kinds.add("estimated")  # reported totals, counted thinking
                            step_completion = event.completion_tokens
                        elif isinstance(event, Notice):
                            yield TurnNotice(conversation_id=conv, turn_id=tid, topic=event.kind, message=event.text)
                        elif isinstance(event, StreamInterrupted):
                            interrupted = event
                        elif isinstance(event, FallbackReply):
                            fallback = event
                        elif isinstance(event, Finish):
                            finish_reason = event.reason
                except AppError as exc:
                    turn.timed("llm_ms", t0, self._clock())
                    # Rejected outright (bad request, auth): nothing to fall back on.
                    yield Degraded(conversation_id=conv, turn_id=tid, service="llm", reason=exc.user_message())
                    yield TurnFailed(
                        conversation_id=conv,
                        turn_id=tid,
                        error=exc.user_message(),
                        error_type=exc.error_type.value,
                        retryable=exc.retryable,
                    )
                    yield self._finished(turn, None, failed=True, stop_reason="failed")
                    return
            turn.timed("llm_ms", t0, self._clock())
            if step_first is not None:
                turn.streaming_s += self._clock() - step_first

            if fallback is not None:
                async with contextlib.aclosing(self._fallback_answer(turn, fallback)) as answer:
                    async for answered in answer:
                        yield answered
                return
            if interrupted is not None:
                turn.degraded = True
                yield Degraded(
                    conversation_id=conv, turn_id=tid, service="llm", reason=f"the reply broke off: {interrupted.error}"
                )
                extra: dict[str, object] = {"error": interrupted.error}
                if interrupted.finish_reason:
                    extra["finish_reason"] = interrupted.finish_reason
                yield await self._save_answer(turn, "".join(step_text), interrupted=True, hidden=True, extra=extra)
                yield TurnFailed(
                    conversation_id=conv,
                    turn_id=tid,
                    error=interrupted.error,
                    error_type=interrupted.error_type,
                    retryable=True,
                )
                yield self._finished(turn, None, failed=True, interrupted=True, stop_reason="interrupted")
                return
            if finish_reason == "content_filter":
                async with contextlib.aclosing(self._filtered(turn, "".join(step_text))) as ending:
                    async for ended in ending:
                        yield ended
                return
            if not calls:
                async with contextlib.aclosing(
                    self._final_answer(turn, step, "".join(step_text), finish_reason, step_completion)
                ) as done:
                    async for ended in done:
                        yield ended
                return
            calls = with_unique_ids(calls, turn.call_ids)
            turn.call_ids.update(call.id for call in calls)
            if step == max_steps:
                note = max_steps_note(max_steps)
                text = ("".join(step_text) + "\n\n" + note).strip()
                yield TextDelta(conversation_id=conv, turn_id=tid, text=("\n\n" if step_text else "") + note, step=step)
                yield await self._save_answer(turn, text, extra={"stop_reason": "max_steps"})
                yield self._finished(turn, None, stop_reason="max_steps")
                return
            async with contextlib.aclosing(self._run_tools(turn, step, "".join(step_text), calls, ask)) as ran:
                async for tool_event in ran:
                    yield tool_event

    async def _final_answer(
        self, turn: _Turn, step: int, text: str, finish_reason: str, completion_tokens: int | None = None
    ) -> AsyncGenerator[TurnEvent, None]:
        """Save a step's reply that asked for no tools: the answer, a cut-off answer, or nothing.

        ``completion_tokens`` is the step's usage (reported or counted), for an honest cut-off note."""
        conv, tid = turn.conversation_id, turn.turn_id
        if not text.strip():
            # Nothing to save as an answer (a reasoning model that only thought, or an empty
            # reply): saving "" would read as an answer in later prompts and in the UI.
            thought = " after thinking" if "".join(turn.reasoning).strip() else ""
            yield TurnFailed(
                conversation_id=conv,
                turn_id=tid,
                error=f"the model returned an empty answer{thought}; nothing was saved as its reply",
                error_type="empty_answer",
                retryable=True,
            )
            yield self._finished(turn, None, failed=True, stop_reason="empty")
            return
        extra: dict[str, object] = {"finish_reason": finish_reason} if finish_reason else {}
        if finish_reason == "length":
            limit = self.config.llm.max_output_tokens
            note = cut_off_note(limit, completion_tokens)
            yield TextDelta(conversation_id=conv, turn_id=tid, text="\n\n" + note, step=step)
            yield await self._save_answer(turn, f"{text}\n\n{note}", extra={**extra, "cut_off": True})
            yield TurnNotice(
                conversation_id=conv,
                turn_id=tid,
                topic="cut_off",
                message=cut_off_notice(limit, completion_tokens),
            )
            yield self._finished(turn, None, stop_reason="cut_off")
            return
        yield await self._save_answer(turn, text, extra=extra)
        yield self._finished(turn, None, stop_reason="answer")

    async def _filtered(self, turn: _Turn, text: str) -> AsyncGenerator[TurnEvent, None]:
        """The provider's content filter stopped the reply: a failure; what came is kept, marked and hidden."""
        conv, tid = turn.conversation_id, turn.turn_id
        if text.strip():
            yield await self._save_answer(
                turn,
                text,
                interrupted=True,
                hidden=True,
                extra={"finish_reason": "content_filter", "error": CONTENT_FILTER_ERROR},
            )
        yield TurnFailed(
            conversation_id=conv, turn_id=tid, error=CONTENT_FILTER_ERROR, error_type="content_filter", retryable=False
        )
        yield self._finished(turn, None, failed=True, interrupted=True, stop_reason="content_filter")

    async def _run_tools(
        self, turn: _Turn, step: int, text: str, calls: list[ToolCall], ask: AskPermission | None
    ) -> AsyncGenerator[TurnEvent, None]:
        conv, tid = turn.conversation_id, turn.turn_id
        t0 = self._clock()
        metadata: dict[str, object] = {"turn_id": tid, "step": step}
        if turn.reasoning:
            metadata["reasoning"] = "".join(turn.reasoning)
        await self.store.add_message(conv, "assistant", text, tool_calls=[*calls], metadata=metadata)
        turn.timed("save_ms", t0, self._clock())
        turn.open_calls = list(calls)
        turn.text = []  # saved with the tool calls; a cancel must not save it twice
        ctx = ToolContext(
            user_id=self.user_id,
            conversation_id=conv,
            turn_id=tid,
            memory=self.memory,
            state=self.state,
            resilience=self.resilience,
            monitor=self.monitor,
        )
        from runtime.tools import ToolArgumentsError
        from runtime.tools.runner import parse_arguments

        for call in calls:
            try:
                shown = parse_arguments(call.arguments)
            except ToolArgumentsError:
                shown = {"_raw": call.arguments}
            yield ToolCallStarted(
                conversation_id=conv, turn_id=tid, call_id=call.id, name=call.name, arguments=shown, step=step
            )
        t0 = self._clock()
        tasks = {asyncio.ensure_future(self.runner.run(call, ctx, ask)): call for call in calls}
        results: dict[str, ToolResult] = {}
        try:
            for next_done in asyncio.as_completed(list(tasks)):
                result = await next_done
                results[result.call_id] = result
                yield ToolCallFinished(
                    conversation_id=conv,
                    turn_id=tid,
                    call_id=result.call_id,
                    name=result.name,
                    status=result.status,
                    output=result.output,
                    error=result.error,
                    truncated=result.truncated,
                    duration_ms=result.duration_ms,
                    step=step,
                )
        finally:
            pending = [task for task in tasks if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                # Let cancelled tools finish unwinding before _on_cancel writes their results.
                await asyncio.gather(*pending, return_exceptions=True)
        turn.timed("tools_ms", t0, self._clock())
        t0 = self._clock()
        for call in calls:
            message = results[call.id].to_message()
            await self.store.append(conv, message.with_updates(metadata={**message.metadata, "turn_id": tid}))
        turn.open_calls = []
        turn.timed("save_ms", t0, self._clock())

    async def _fallback_answer(self, turn: _Turn, fallback: FallbackReply) -> AsyncGenerator[TurnEvent, None]:
        conv, tid = turn.conversation_id, turn.turn_id
        turn.degraded = True
        yield Degraded(conversation_id=conv, turn_id=tid, service="llm", reason=fallback.error)
        if fallback.source == "cache":
            # An earlier answer to the identical prompt: a real answer, only stale.
            yield TextDelta(conversation_id=conv, turn_id=tid, text=fallback.text, step=turn.steps)
            yield await self._save_answer(turn, fallback.text, source="cache", extra={"stale": True})
            yield self._finished(turn, None, stop_reason="answer")
            return
        yield await self._save_answer(
            turn, fallback.text, source=fallback.source, hidden=True, extra={"fallback": True, "error": fallback.error}
        )
        yield TurnFailed(
            conversation_id=conv, turn_id=tid, error=fallback.error, error_type="llm_unavailable", retryable=True
        )
        yield self._finished(turn, None, failed=True, stop_reason="llm_unavailable")

    async def _save_answer(
        self,
        turn: _Turn,
        text: str,
        *,
        interrupted: bool = False,
        hidden: bool = False,
        source: str = "llm",
        extra: dict[str, object] | None = None,
    ) -> AssistantSaved:
        t0 = self._clock()
        metadata: dict[str, object] = {"turn_id": turn.turn_id, "source": source, **(extra or {})}
        if source == "llm":  # which model wrote it (the TUI's details of a reply show it)
            metadata["model"] = turn.model or self.llm.current_model or ""
        reasoning = "".join(turn.reasoning)
        if reasoning and source == "llm":
            metadata["reasoning"] = reasoning  # shown, never re-sent: to_openai() sends no metadata
        if interrupted:
            metadata["interrupted"] = True
        if hidden:
            metadata[HIDDEN] = True
        figures = await self._figures(turn) if source == "llm" else None
        if figures is not None:
            metadata[FIGURES_KEY] = figures
        saved = await self.store.add_message(turn.conversation_id, "assistant", text, metadata=metadata)
        turn.saved = True
        turn.timed("save_assistant_ms", t0, self._clock())
        return AssistantSaved(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            message_id=saved.id,
            content=text,
            interrupted=interrupted,
            journaled=bool(self.store.degraded),
            source=source,
            finish_reason=str(metadata.get("finish_reason") or ""),
            figures=figures,
        )

    async def _figures(self, turn: _Turn) -> dict[str, object] | None:
        """The reply's figures (issue 17): the turn's tokens so far, its times and the cost by
        ``[pricing]``; None when no model call reported or counted any usage."""
        if not turn.usage_kinds:
            return None
        now = self._clock()
        model = turn.model or ""
        if not model:
            try:
                model = await self.llm.model()
            except AppError:
                model = ""
        prompt, completion = turn.usage["prompt_tokens"], turn.usage["completion_tokens"]
        first = turn.first_token_at
        figures = ReplyFigures(
            prompt_tokens=prompt,
            completion_tokens=completion,
            estimated="estimated" in turn.usage_kinds,
            total_ms=round((now - turn.started) * 1000.0, 1),
            ttft_ms=round((first - turn.started) * 1000.0, 1) if first is not None else None,
            tokens_per_second=round(completion / turn.streaming_s, 1) if turn.streaming_s > 0 and completion else None,
            model=model,
            cost=self.config.pricing.cost(model, prompt, completion) if model else None,
            currency=self.config.pricing.currency,
        )
        return figures.to_dict()

    def _finished(
        self,
        turn: _Turn,
        started: float | None,
        *,
        failed: bool = False,
        interrupted: bool = False,
        stop_reason: str = "answer",
    ) -> TurnFinished:
        turn.timings["total_ms"] = round((self._clock() - turn.started) * 1000.0, 3)
        kinds = turn.usage_kinds
        return TurnFinished(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            usage=dict(turn.usage),
            usage_source="mixed" if len(kinds) > 1 else next(iter(kinds), "none"),
            timings=dict(turn.timings),
            steps=turn.steps,
            degraded=turn.degraded,
            interrupted=interrupted,
            failed=failed,
            stop_reason=stop_reason,
        )

    async def _on_cancel(self, turn: _Turn, started: float) -> None:
        """Leave a consistent conversation after Esc: results for open tool calls, the partial answer."""
        conv, tid = turn.conversation_id, turn.turn_id
        try:
            for call in turn.open_calls:
                await self.store.add_message(
                    conv,
                    "tool",
                    "Error: cancelled by the user",
                    tool_call_id=call.id,
                    name=call.name,
                    metadata={"turn_id": tid, "status": "cancelled"},
                )
            if turn.user_message_id and not turn.saved and "".join(turn.text).strip():
                event = await self._save_answer(
                    turn, "".join(turn.text), interrupted=True, extra={"stop_reason": "cancelled"}
                )
                self._emit(event)
        except AppError as exc:
            log.warning("could not save the cancelled turn %s: %s", tid, describe(exc))
        self._emit(self._finished(turn, started, interrupted=True, stop_reason="cancelled"))

    # ------------------------------------------------------------ after the answer

    def _after_turn(self, turn: _Turn) -> None:
        if self.memory is not None and self.config.memory.enabled and self.config.memory.auto_remember:
            self._spawn(self._remember(self.memory, turn), "remember")
        if self.summarizer is not None:
            self._spawn(self._summarize(self.summarizer, turn.conversation_id), "summarize")

    def _spawn(self, coro: Coroutine[object, object, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"agent-{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _remember(self, memory: VectorMemoryStore, turn: _Turn) -> None:
        from runtime.memory import remember_turn

        try:
            await remember_turn(
                memory, self.user_id, turn.conversation_id, turn.user_text, message_id=turn.user_message_id
            )
        except AppError as exc:
            log.warning("memory write after turn %s failed: %s", turn.turn_id, describe(exc))
        except Exception:  # same reason as in _summarize
            log.exception("memory write after turn %s crashed", turn.turn_id)

    async def _summarize(self, summarizer: Summarizer, conversation_id: str) -> None:
        try:
            result = await summarizer.maybe_summarize(conversation_id)
        except AppError as exc:
            log.warning("summarisation of %s skipped: %s", conversation_id, describe(exc))
            return
        except Exception:  # a bug here must reach the log, not die as an unretrieved task error
            log.exception("summarisation of %s crashed", conversation_id)
            return
        if result is not None:
            log.info(
                "summarisation of %s: %s (%d -> %d tokens)",
                conversation_id,
                result.status,
                result.history_tokens_before,
                result.history_tokens_after,
            )


@contextlib.asynccontextmanager
async def _closing(events: AsyncIterator[T]) -> AsyncGenerator[AsyncIterator[T], None]:
    """``contextlib.aclosing`` for an iterator typed as a plain AsyncIterator (an async
    generator in fact): closed on exit, so a cancelled turn closes the LLM stream at once."""
    try:
        yield events
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def collect(events: AsyncIterator[TurnEvent]) -> list[TurnEvent]:
    """All events of a turn, in order (tests and the CLI's --json)."""
    return [event async for event in events]


def final_text(events: Sequence[TurnEvent]) -> str:
    """The saved answer of a finished turn ("" if none was saved)."""
    for event in reversed(events):
        if isinstance(event, AssistantSaved):
            return event.content
    return ""
