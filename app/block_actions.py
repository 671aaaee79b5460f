"""What the keys of block navigation (and the same commands in the palette) do to a chat block.

:class:`app.widgets.block_nav.BlockNav` highlights a block and posts what the user asked for;
:class:`BlockActions` does it against the app (:class:`BlockSurface`): copy the block or one of
its code blocks (OSC 52 and the system clipboard, :mod:`app.clipboard`), expand or collapse a
tool or thinking block, regenerate the latest reply (``/retry``'s turn: the old reply stays as a
variant), switch between the variants of a reply (the pick is stored with the conversation and
is what later prompts see, :mod:`runtime.core.variants`), hide a block from view, and show its
details (tokens, time, model, source) in a small modal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from textual.app import SystemCommand
from textual.widget import Widget
from textual.widgets import Collapsible

from app.clipboard import copy_text
from app.safe_text import one_line
from app.screens.details import DetailsScreen
from app.surface import ChatSurface
from app.widgets.assistant_message import AssistantMessage
from app.widgets.block_nav import BlockNav, block_kind, block_text, code_blocks
from app.widgets.thinking_block import ThinkingBlock
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from runtime.core.errors import AppError, describe
from runtime.core.figures import ReplyFigures, figures_line
from runtime.core.variants import turn_variants

if TYPE_CHECKING:
    from textual.screen import Screen

    from runtime.core.messages import ChatMessage

log = logging.getLogger(__name__)

#: Stored messages read to find a block's message and its turn's variants.
READ_BACK = 400


class BlockSurface(ChatSurface, Protocol):
    """The app as block actions see it: the chat surface, plus the navigation line, the open
    conversation's variant picks and the screen stack."""

    #: The open conversation's picked variants (user message id -> (chosen turn, newest then)).
    variant_choices: dict[str, tuple[str, str]]

    @property
    def block_nav(self) -> BlockNav: ...

    @property
    def turn_running(self) -> bool: ...

    def leave_blocks(self, typed: str = "") -> None: ...

    async def reload_sidebar(self) -> None: ...

    def call_after_refresh(self, callback: Any, *args: Any, **kwargs: Any) -> bool: ...

    def push_screen(self, screen: Screen[Any], callback: Any = None, wait_for_dismiss: bool = False) -> Any: ...

    def run_worker(self, work: Any, name: str | None = "", group: str = "default", **kwargs: Any) -> Any: ...


class BlockActions:
    """Runs ``copy``, ``code``, ``toggle``, ``retry``, ``edit``, ``hide``, ``details`` and
    ``variant`` on a chat block (see :meth:`act`); every outcome is a notification."""

    def __init__(self, app: BlockSurface) -> None:
        self.app = app

    async def act(self, action: str, block: Widget, number: int = 0) -> None:
        """Do ``action`` on ``block`` (``number``: the code block for ``code``, from 1; the
        direction for ``variant``, -1 or 1). Runtime errors become a notification."""
        handler: Callable[[Widget, int], Any] | None = getattr(self, f"_{action}", None)
        if handler is None:
            self._say(f"unknown block action {action!r}", "warning")
            return
        try:
            await handler(block, number)
        except AppError as exc:
            self._say(f"{action} failed: {describe(exc)}", "error")

    def _say(self, text: str, severity: str = "information") -> None:
        self.app.notify(text, severity=severity, markup=False)  # type: ignore[arg-type]

    # ------------------------------------------------------------ the actions

    async def _copy(self, block: Widget, number: int) -> None:
        text = block_text(block)
        if not text:
            self._say(f"this {block_kind(block)} has no text to copy yet", "warning")
            return
        self._say(f"{block_kind(block)}: " + await copy_text(self.app, text))

    async def _code(self, block: Widget, number: int) -> None:
        codes = code_blocks(block_text(block)) if isinstance(block, (UserMessage, AssistantMessage)) else []
        if not codes:
            self._say(f"this {block_kind(block)} has no code block", "warning")
            return
        if not 1 <= number <= len(codes):
            self._say(f"this {block_kind(block)} has {len(codes)} code block(s): press 1-{len(codes)}", "warning")
            return
        self._say(f"code block {number} of {len(codes)}: " + await copy_text(self.app, codes[number - 1]))

    async def _toggle(self, block: Widget, number: int) -> None:
        if not isinstance(block, Collapsible):
            self._say("only tool and thinking blocks expand and collapse", "warning")
            return
        block.collapsed = not block.collapsed
        self.app.call_after_refresh(self.app.chat_log.scroll_to_widget, block, animate=False)

    async def _retry(self, block: Widget, number: int) -> None:
        if not isinstance(block, (AssistantMessage, UserMessage)):
            self._say("retry works on a reply or on your message", "warning")
            return
        if self.app.turn_running:
            self._say("a reply is still streaming: press Esc first", "warning")
            return
        if self._in_last_turn(block):
            self.app.leave_blocks()
            await self.app.start_turn(None, retry=True)
            return
        await self._retry_in_branch(block)

    async def _retry_in_branch(self, block: Widget) -> None:
        """An earlier turn: history is append-only, so its new answer goes in a branch that
        shares the history up to that turn's user message (the original stays in its parent)."""
        app = self.app
        conv, message_id = app.conversation_id, getattr(block, "message_id", None)
        if conv is None or app.rt is None or not message_id:
            self._say("this message is not saved yet: wait for it to be sent", "warning")
            return
        messages = await app.rt.read_messages(conv, READ_BACK)
        found = next((m for m in messages if m.id == message_id), None)
        asked = found if found is not None and found.role == "user" else None
        if found is not None and asked is None:
            before = [m for m in messages if m.role == "user" and (m.seq or 0) < (found.seq or 0)]
            asked = before[-1] if before else None
        if asked is None or asked.seq is None:
            self._say("could not find the message this reply answers among the newest messages", "warning")
            return
        branch = await app.rt.branch_conversation(conv, asked.seq)
        app.leave_blocks()
        await app.open_conversation(branch)
        await app.reload_sidebar()
        self._say(f"regenerating in a branch from message #{asked.seq} (the original stays in its parent)")
        await app.start_turn(None, retry=True)

    async def _edit(self, block: Widget, number: int) -> None:
        edit = getattr(self.app, "edit_message", None)
        if not isinstance(block, UserMessage):
            self._say("only your own messages can be edited", "warning")
        elif not callable(edit):
            self._say("editing a message is not available in this version", "warning")
        elif not block.message_id:
            self._say("this message is not saved yet: wait for it to be sent", "warning")
        else:
            # Its text goes into the composer; sending it branches the conversation before it.
            self.app.leave_blocks()
            await edit(block.message_id)

    async def _hide(self, block: Widget, number: int) -> None:
        nav = self.app.block_nav
        shown = nav.blocks()
        index = shown.index(block) if block in shown else -1
        block.display = False
        rest = nav.blocks()
        if rest:
            nav.highlight(rest[max(0, min(index, len(rest) - 1))])
        else:
            self.app.leave_blocks()
        self._say(f"{block_kind(block)} hidden from view (still stored: reopening the conversation shows it)")

    async def _details(self, block: Widget, number: int) -> None:
        rows = await self.details(block)
        self.app.push_screen(DetailsScreen(f"Details: {block_kind(block)}", rows))

    async def _variant(self, block: Widget, number: int) -> None:
        app = self.app
        conv = app.conversation_id
        if not isinstance(block, AssistantMessage) or not block.message_id or conv is None or app.rt is None:
            self._say("variants belong to a saved reply: highlight one", "warning")
            return
        if app.turn_running:
            self._say("a reply is still streaming: press Esc first", "warning")
            return
        messages = await app.rt.read_messages(conv, READ_BACK)
        found = turn_variants(messages, block.message_id, app.variant_choices)
        if found is None or len(found.turns) < 2:
            self._say("this reply has no other variant (r or /retry makes one)", "warning")
            return
        index = found.turns.index(found.shown) + (-1 if number < 0 else 1)
        if not 0 <= index < len(found.turns):
            self._say(
                f"no {'earlier' if number < 0 else 'later'} variant: this is {found.turns.index(found.shown) + 1} of {len(found.turns)}"
            )
            return
        chosen = found.turns[index]
        await app.rt.choose_variant(conv, found.user_message_id, chosen, found.turns[-1])
        app.variant_choices[found.user_message_id] = (chosen, found.turns[-1])
        ids = {m.id for m in messages if m.role == "assistant" and m.metadata.get("turn_id") == chosen}
        await app.open_conversation(conv)  # redrawn with the new pick marked
        target = next((r for r in app.chat_log.query(AssistantMessage) if r.message_id in ids), None)
        nav = app.block_nav
        if target is not None and nav.display:
            nav.highlight(target)
        elif target is not None:
            app.chat_log.scroll_to_widget(target, animate=False)
        self._say(f"variant {index + 1} of {len(found.turns)}: later prompts see this reply")

    # ------------------------------------------------------------ helpers

    def _in_last_turn(self, block: Widget) -> bool:
        """``block`` is the last user message, or a reply after it."""
        children = [c for c in self.app.chat_log.children if isinstance(c, (UserMessage, AssistantMessage))]
        if block not in children:
            return False
        after = children[children.index(block) + 1 :]
        return not any(isinstance(c, UserMessage) for c in after)

    async def _stored(self, message_id: str | None) -> ChatMessage | None:
        app = self.app
        if not message_id or app.conversation_id is None or app.rt is None:
            return None
        try:
            messages = await app.rt.read_messages(app.conversation_id, READ_BACK)
        except AppError as exc:
            log.info("details: could not read the conversation: %s", describe(exc))
            return None
        return next((m for m in messages if m.id == message_id), None)

    async def details(self, block: Widget) -> list[tuple[str, str]]:
        """(label, value) rows about ``block``: for a message its id, time, tokens, model and
        source from the store; for a tool call its status and duration; for thinking its size."""
        rows: list[tuple[str, str]] = [("kind", block_kind(block))]
        text = block_text(block)
        if isinstance(block, ToolCallBlock):
            rows += [("tool", block.tool_name), ("call id", block.call_id), ("status", block.status)]
            if block.duration_ms is not None:
                rows.append(("duration", f"{block.duration_ms:.0f} ms"))
            rows.append(("result", f"{len(block.output):,} characters"))
            return rows
        if isinstance(block, ThinkingBlock):
            return [*rows, ("size", f"{len(text.split()):,} words, {len(text):,} characters")]
        message_id = getattr(block, "message_id", None)
        stored = await self._stored(message_id)
        rows.append(("message id", message_id or "not saved yet"))
        rows.append(("size", f"{len(text):,} characters, {len(code_blocks(text))} code block(s)"))
        if stored is None:
            rows.append(("stored", "not found in the newest messages (or not saved yet)"))
            return rows
        meta = stored.metadata
        rows.append(("time", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stored.created_at))))
        rows.append(
            ("tokens", f"{stored.token_count:,} (counted)" if stored.token_count is not None else "not counted")
        )
        if isinstance(block, AssistantMessage):
            model = (
                meta.get("model") or f"not recorded (this conversation uses {self.app.header.model or 'the default'})"
            )
            rows.append(("model", str(model)))
            rows.append(("source", str(meta.get("source") or "llm")))
            rows.append(
                ("shown as", "other variant (not sent)" if block.variant else "the answer (sent in later prompts)")
            )
        figures = ReplyFigures.of_message(meta)
        if figures is not None:  # the reply's usage and timings (issue 17 item 4)
            rows.append(("figures", figures_line(figures)))
        if meta.get("turn_id"):
            rows.append(("turn", str(meta["turn_id"])))
        shown = {"model", "source", "turn_id", "reasoning", "hidden"}
        for key, value in sorted(meta.items()):
            if key not in shown and isinstance(value, (str, int, float, bool)):
                rows.append((key.replace("_", " "), one_line(str(value), 60)))
        if stored.seq is not None:
            rows.append(("position", f"message #{stored.seq} (the number /edit takes)"))
        return rows

    # ------------------------------------------------------------ the command palette

    def target(self) -> Widget | None:
        """What the palette's block commands act on: the highlighted block, else the last reply."""
        current = self.app.block_nav.current
        if current is not None and current.is_attached:
            return current
        return self.app.chat_log.last_reply()

    def palette_commands(self) -> Iterator[SystemCommand]:
        """The block actions as palette commands, on the highlighted block (else the last reply)."""
        yield SystemCommand("Blocks", "Move through the chat's messages and tool blocks (Alt+↑ / Alt+↓)", self._start)
        block = self.target()
        if block is None:
            return
        what = block_kind(block) if self.app.block_nav.current is block else f"last {block_kind(block)}"

        def run(action: str, number: int = 0) -> Callable[[], None]:
            def go() -> None:
                self.app.run_worker(self.act(action, block, number), group="block", exit_on_error=False)

            return go

        yield SystemCommand(f"Copy {what}", f"Copy the {what} (OSC 52 and the system clipboard)", run("copy"))
        codes = code_blocks(block_text(block)) if isinstance(block, (UserMessage, AssistantMessage)) else []
        for n, code in enumerate(codes, 1):
            yield SystemCommand(f"Copy code block {n} of {what}", one_line(code, 60), run("code", n))
        if isinstance(block, Collapsible):
            yield SystemCommand(f"Expand/collapse {what}", "Show or hide its contents", run("toggle"))
        if isinstance(block, (AssistantMessage, UserMessage)):
            yield SystemCommand(
                f"Retry from {what}", "Regenerate the latest reply (the old one stays a variant)", run("retry")
            )
        if isinstance(block, AssistantMessage):
            yield SystemCommand(f"Previous variant of {what}", "Show and send the earlier variant", run("variant", -1))
            yield SystemCommand(f"Next variant of {what}", "Show and send the later variant", run("variant", 1))
        if isinstance(block, UserMessage) and callable(getattr(self.app, "edit_message", None)):
            yield SystemCommand(f"Edit {what}", "Edit this message", run("edit"))
        yield SystemCommand(f"Hide {what}", "Hide it from view (it stays stored)", run("hide"))
        yield SystemCommand(f"Details of {what}", "Tokens, time, model, source", run("details"))

    def _start(self) -> None:
        action = getattr(self.app, "action_blocks", None)
        if callable(action):
            action(-1)
