"""How one turn and a stored history look in the chat log.

:class:`TurnView` renders a turn's events as they arrive (streamed reply, tool blocks, notices,
the Context panel); :func:`render_history` builds the same widgets from stored messages when a
conversation is opened, so a resumed conversation looks like the live one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from textual.widget import Widget

from app.surface import ChatSurface
from app.widgets.assistant_message import AssistantMessage
from app.widgets.chat_log import ChatLog
from app.widgets.notice import Notice
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from runtime.core.events import (
    AssistantSaved,
    Degraded,
    MemoriesRecalled,
    PromptBuilt,
    RetryScheduled,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFailed,
    TurnFinished,
    UserSaved,
)
from runtime.core.messages import ChatMessage


class TurnView:
    """Renders one turn's events into the chat log and the Context panel."""

    def __init__(self, app: ChatSurface, conversation_id: str) -> None:
        self.app = app
        self.conversation_id = conversation_id
        self.reply: AssistantMessage | None = None
        self.blocks: dict[str, ToolCallBlock] = {}
        self.finished = False
        #: "waiting for the model…" between the prompt and the first token (retries shown in it).
        self.waiting: Notice | None = None

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
        if event.conversation_id != self.app.conversation_id:
            return  # the user switched away; the store has it all
        if isinstance(event, PromptBuilt):
            await self.start_waiting()
        elif not isinstance(event, (MemoriesRecalled, UserSaved, Degraded)):
            await self.stop_waiting()
        if isinstance(event, TextDelta):
            if self.reply is None:
                self.reply = AssistantMessage(streaming=True)
                await self.log.add(self.reply)
            await self.reply.append(event.text)
        elif isinstance(event, ToolCallStarted):
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
            self.reply = None
        elif isinstance(event, PromptBuilt):
            self.app.context_panel.show_report(event.report)
        elif isinstance(event, MemoriesRecalled):
            self.app.context_panel.show_memories(event.texts)
        elif isinstance(event, Degraded):
            await self.log.notice(f"degraded ({event.service or 'backend'}): {event.reason}", "degraded")
            if event.service == "memory":
                self.app.context_panel.show_memories((), note="memory offline: recall skipped")
        elif isinstance(event, TurnFailed):
            await self._close_reply(interrupted=True)
            hint = " — type /retry to resend it" if event.retryable else ""
            await self.log.notice(f"the reply failed: {event.error}{hint}", "error")
        elif isinstance(event, TurnFinished):
            self.finished = True
            await self._close_reply(interrupted=event.interrupted)
            if event.stop_reason == "max_steps":
                await self.log.notice("stopped: the tool step limit was reached", "degraded")

    async def _close_reply(self, interrupted: bool = False) -> None:
        if self.reply is not None:
            await self.reply.finish(interrupted=interrupted)
            self.reply = None

    async def cancelled(self) -> None:
        for block in self.blocks.values():
            if block.status == "running":
                block.finish(status="cancelled", output="cancelled by the user")
        await self._close_reply(interrupted=True)
        if not self.finished:
            await self.log.notice("cancelled: the partial reply is kept, marked interrupted", "degraded")


def render_history(messages: Sequence[ChatMessage]) -> list[Widget]:
    """Widgets for stored messages: user and assistant bubbles, tool blocks with their results."""
    widgets: list[Widget] = []
    blocks: dict[str, ToolCallBlock] = {}
    for message in messages:
        meta = message.metadata or {}
        if message.role == "user":
            widgets.append(UserMessage(message.content, message_id=message.id))
        elif message.role == "assistant":
            if message.content:
                reply = AssistantMessage(
                    message.content,
                    message_id=message.id,
                    source=str(meta.get("source") or "llm"),
                    interrupted=bool(meta.get("interrupted")),
                )
                reply.set_class(bool(meta.get("interrupted")), "-interrupted")
                reply.set_class(str(meta.get("source") or "llm") != "llm", "-fallback")
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
