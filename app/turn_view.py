"""How one turn and a stored history look in the chat log.

:class:`TurnView` renders a turn's events as they arrive (streamed reply, tool blocks, notices,
the Context panel); :func:`render_history` builds the same widgets from stored messages when a
conversation is opened, so a resumed conversation looks like the live one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence

from textual.widget import Widget

from app.surface import ChatSurface
from app.widgets.assistant_message import AssistantMessage
from app.widgets.chat_log import ChatLog
from app.widgets.notice import Notice
from app.widgets.thinking_block import ThinkingBlock
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from runtime.core.errors import AppError, ErrorType
from runtime.core.events import (
    AssistantSaved,
    Degraded,
    MemoriesRecalled,
    PromptBuilt,
    ReasoningDelta,
    RetryScheduled,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFailed,
    TurnFinished,
    TurnNotice,
    UserSaved,
)
from runtime.core.figures import ReplyFigures
from runtime.core.messages import ChatMessage
from runtime.core.variants import variant_ids


class TurnView:
    """Renders one turn's events into the chat log and the Context panel."""

    def __init__(self, app: ChatSurface, conversation_id: str) -> None:
        self.app = app
        self.conversation_id = conversation_id
        self.reply: AssistantMessage | None = None
        #: The current step's thinking (reasoning models), open until the answer starts.
        self.thinking: ThinkingBlock | None = None
        self.blocks: dict[str, ToolCallBlock] = {}
        self.finished = False
        #: The reply text streamed and not yet saved (redrawn when the user comes back to this
        #: conversation mid-stream: the store does not have it yet).
        self.partial = ""
        #: "waiting for the model…" between the prompt and the first token (retries shown in it).
        self.waiting: Notice | None = None
        #: Why the LLM degraded this turn, held back: the fallback reply or the failure line that
        #: follows says it, and saying it twice more (notice, reply, failure) buried the reply.
        self.llm_degraded: str | None = None
        #: The text of the fallback stand-in (source not ``llm``) that answered this turn ("" if
        #: none): it already says what failed, and usually what to do.
        self.fallback_text = ""
        #: The turn's widgets left the screen (the user opened another conversation, or this one
        #: was redrawn) and :meth:`reattach` has not put the reply so far back yet: events only
        #: update ``partial`` until it does, so a delta arriving while the history is redrawn
        #: cannot start a reply that lacks the text streamed before it.
        self.detached = False
        #: Text streamed while :meth:`reattach` mounted the reply, added with the next delta.
        self.owed = ""

    def detach(self) -> None:
        """The chat log is about to be cleared (another conversation shown, or this one redrawn):
        forget the turn's widgets; :meth:`reattach` redraws the reply so far when its
        conversation is on screen again."""
        self.reply = self.waiting = self.thinking = None
        self.blocks = {}
        self.detached = True
        self.owed = ""

    @property
    def log(self) -> ChatLog:
        return self.app.chat_log

    async def start_waiting(self) -> None:
        if self.waiting is None:
            self.waiting = Notice("waiting for the model…", "hint")
            await self.log.add(self.waiting)

    async def stop_waiting(self) -> None:
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            await waiting.remove()

    def retrying(self, event: RetryScheduled) -> None:
        if self.waiting is not None:
            self.waiting.set_text(
                f"the model did not answer ({event.error}); retry {event.attempt} in {event.delay:.1f} s…"
            )

    async def handle(self, event: TurnEvent) -> None:
        # The Context panel keeps every conversation's figures, shown or not.
        panel = self.app.context_panel
        if isinstance(event, PromptBuilt):
            panel.record(event.conversation_id, report=event.report)
        elif isinstance(event, MemoriesRecalled):
            panel.record(event.conversation_id, memories=event.texts)
        elif isinstance(event, Degraded) and event.service == "memory":
            panel.record(event.conversation_id, memories=(), note="memory offline: recall skipped")
        if isinstance(event, TextDelta):
            self.partial += event.text
        elif isinstance(event, (AssistantSaved, ToolCallStarted)):
            self.partial = ""
        if event.conversation_id != self.app.conversation_id or self.detached:
            # The user switched away: this turn's widgets left the screen with its conversation
            # (the store has what was saved; ``partial`` what was not), reattach() redraws them.
            self.detach()
            return
        if isinstance(event, UserSaved) and event.resent:
            self._mark_variants()
        if isinstance(event, PromptBuilt):
            await self.start_waiting()
        elif not isinstance(event, (MemoriesRecalled, UserSaved, Degraded)):
            await self.stop_waiting()
        if isinstance(event, TextDelta):
            self._thought()
            if self.reply is None:
                self.reply = AssistantMessage(streaming=True)
                await self.log.add(self.reply)
            text, self.owed = self.owed + event.text, ""
            await self.reply.append(text)
        elif isinstance(event, ReasoningDelta):
            if self.thinking is None:
                self.thinking = ThinkingBlock()
                await self.log.add(self.thinking)
            self.thinking.append(event.text)
        elif isinstance(event, TurnNotice):
            hint = " — type /continue to go on" if event.topic == "cut_off" else ""
            await self.log.notice(f"{event.message}{hint}", "degraded" if event.topic == "cut_off" else "info")
        elif isinstance(event, ToolCallStarted):
            self._thought()
            await self._close_reply()
            started = ToolCallBlock(event.call_id, event.name, event.arguments)
            self.blocks[event.call_id] = started
            await self.log.add(started)
        elif isinstance(event, ToolCallFinished):
            block = self.blocks.get(event.call_id)
            if block is None:
                block = ToolCallBlock(event.call_id, event.name)
                self.blocks[event.call_id] = block
                await self.log.add(block)
            block.finish(
                status=event.status,
                output=event.output,
                error=event.error,
                duration_ms=event.duration_ms,
                truncated=event.truncated,
            )
        elif isinstance(event, AssistantSaved):
            self.owed = ""  # finish() below is given the whole saved text
            if event.source not in ("llm", "") and event.content:
                self.fallback_text = event.content
            if self.reply is None:
                if event.content:
                    self.reply = AssistantMessage(event.content, message_id=event.message_id)
                    await self.log.add(self.reply)
                    await self.reply.finish(
                        interrupted=event.interrupted, source=event.source, message_id=event.message_id
                    )
            else:
                await self.reply.finish(
                    content=event.content,
                    interrupted=event.interrupted,
                    source=event.source,
                    message_id=event.message_id,
                )
            figures = ReplyFigures.from_dict(event.figures) if event.figures else None
            if self.reply is not None and figures is not None:
                await self.reply.show_figures(figures)
            self.reply = None
        elif isinstance(event, Degraded):
            if event.service == "llm":
                self.llm_degraded = event.reason  # said once, by the reply or the failure line
            else:
                await self.log.notice(f"degraded ({event.service or 'backend'}): {event.reason}", "degraded")
        elif isinstance(event, TurnFailed):
            await self._close_reply(interrupted=True)
            self.llm_degraded = None
            if self.fallback_text:
                # The fallback reply already says what failed: only what to do is left to say.
                if event.retryable and "/retry" not in self.fallback_text:
                    await self.log.notice("type /retry to resend it once the model is back", "hint")
            else:
                hint = " — type /retry to resend it" if event.retryable else ""
                await self.log.notice(f"the reply failed: {event.error}{hint}", "error")
                if event.error_type == ErrorType.NOT_FOUND.value:
                    await self._own_model_hint()
        elif isinstance(event, TurnFinished):
            self.finished = True
            await self._close_reply(interrupted=event.interrupted)
            if self.llm_degraded is not None:
                # A stale cached answer stood in (no failure follows): say why, once.
                reason, self.llm_degraded = self.llm_degraded, None
                await self.log.notice(f"degraded (llm): {reason}", "degraded")
            if event.stop_reason == "max_steps":
                await self.log.notice("stopped: the tool step limit was reached", "degraded")

    def _mark_variants(self) -> None:
        """A /retry started: the replies shown after the last user message become earlier variants."""
        for child in reversed(self.log.children):
            if isinstance(child, UserMessage):
                break
            if isinstance(child, AssistantMessage):
                child.mark_variant()

    async def reattach(self) -> None:
        """The user came back to this turn's conversation mid-stream: show the reply so far (or
        the wait for it) below the stored history, and go on streaming into it."""
        if self.finished or self.reply is not None:
            self.detached = False
            return
        if not self.partial:
            self.detached = False
            await self.start_waiting()
            return
        # Deltas that arrive while the reply is being mounted only grow ``partial`` (the view
        # stays detached): written into a widget not mounted yet, they came out before its text.
        shown = self.partial
        reply = AssistantMessage(shown, streaming=True)
        await self.log.add(reply)
        self.reply, self.detached = reply, False
        # What streamed meanwhile goes in with the next delta, by the task that handles the
        # events: two tasks appending at once interleave their fragments.
        self.owed = self.partial[len(shown) :] if self.partial.startswith(shown) else ""

    def _thought(self) -> None:
        """The step's thinking is over (its answer or tool calls begin): collapse it."""
        if self.thinking is not None:
            self.thinking.done()
            self.thinking = None

    async def _own_model_hint(self) -> None:
        """After a "no such model" failure: when the conversation asks for a model of its own
        (picked with /model or Ctrl+O), say so; the endpoint's hint names only the config."""
        rt = self.app.rt
        if rt is None:
            return
        with contextlib.suppress(AppError):
            own = (await rt.get_conversation(self.conversation_id)).model
            if own:
                await self.log.notice(
                    f"this conversation asks for model {own} (its /model pick): /model or Ctrl+O picks another",
                    "hint",
                )

    async def _close_reply(self, interrupted: bool = False) -> None:
        self._thought()
        owed, self.owed = self.owed, ""
        if self.reply is not None:
            if owed:
                await self.reply.append(owed)
            await self.reply.finish(interrupted=interrupted)
            self.reply = None

    async def cancelled(self) -> None:
        for block in self.blocks.values():
            if block.status == "running":
                block.finish(status="cancelled", output="cancelled by the user")
        await self._close_reply(interrupted=True)
        if not self.finished and self.conversation_id == self.app.conversation_id:
            await self.log.notice("cancelled: the partial reply is kept, marked interrupted", "degraded")


def render_history(
    messages: Sequence[ChatMessage], choices: Mapping[str, tuple[str, str]] | None = None
) -> list[Widget]:
    """Widgets for stored messages: user and assistant bubbles, tool blocks with their results;
    replies that are not their turn's answer (replaced, or not the variant picked in ``choices``,
    see :func:`runtime.core.variants.variant_ids`) are marked as variants."""
    widgets: list[Widget] = []
    blocks: dict[str, ToolCallBlock] = {}
    replaced = variant_ids(messages, choices=choices)
    for message in messages:
        meta = message.metadata or {}
        if message.role == "user":
            widgets.append(UserMessage(message.content, message_id=message.id))
        elif message.role == "assistant":
            reasoning = meta.get("reasoning")
            if isinstance(reasoning, str) and reasoning.strip():
                widgets.append(ThinkingBlock(reasoning, thinking=False))
            if message.content:
                reply = AssistantMessage(
                    message.content,
                    message_id=message.id,
                    source=str(meta.get("source") or "llm"),
                    interrupted=bool(meta.get("interrupted")),
                    figures=ReplyFigures.of_message(meta),
                )
                reply.set_class(bool(meta.get("interrupted")), "-interrupted")
                reply.set_class(str(meta.get("source") or "llm") != "llm", "-fallback")
                if message.id in replaced:
                    reply.mark_variant()
                widgets.append(reply)
            for call in message.tool_calls:
                called = ToolCallBlock(call.id, call.name, _json_or_text(call.arguments))
                blocks[call.id] = called
                widgets.append(called)
        elif message.role == "tool":
            block = blocks.get(message.tool_call_id or "")
            if block is None:
                block = ToolCallBlock(message.tool_call_id or "", message.name or "tool")
                widgets.append(block)
            block.finish(
                status=str(meta.get("status") or "ok"),
                output=message.content,
                duration_ms=float(meta.get("duration_ms") or 0.0),
            )
    return widgets


def _json_or_text(raw: str) -> object:
    try:
        parsed: object = json.loads(raw) if raw else {}
        return parsed
    except ValueError:
        return raw
