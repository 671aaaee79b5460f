"""Moving through the chat's blocks from the keyboard, and acting on the highlighted one.

Alt+Up / Alt+Down (keys the composer leaves alone: it uses Up/Down for its input history)
highlight a message, tool block or thinking block of the chat log and put :class:`BlockNav` in
the composer's place. Its one line says which block is highlighted and which keys act on it;
the keys themselves are its bindings, and every action is posted to the app as a
:class:`BlockNav.Act` message (the app owns the runtime, the clipboard and the screens). Esc, or
typing any other character, goes back to the composer (the character is typed there).

What a block is: :data:`BLOCK_TYPES` children of the chat log that are shown (a block hidden
with ``d`` is skipped). Its copyable text is :func:`block_text`; the fenced or indented code
blocks in it (numbered from 1 in the hint line) are :func:`code_blocks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from markdown_it import MarkdownIt
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from app.widgets.assistant_message import AssistantMessage
from app.widgets.chat_log import ChatLog
from app.widgets.thinking_block import ThinkingBlock
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage

#: The chat log entries the highlight moves through (notices and the welcome card are skipped).
BLOCK_TYPES = (UserMessage, AssistantMessage, ToolCallBlock, ThinkingBlock)
#: The CSS class of the highlighted block (styled in ``app/holdfast.tcss``).
HIGHLIGHT = "-block-highlight"
#: Code blocks a digit key can pick (1-9).
MAX_PICK = 9

_PARSER = MarkdownIt("commonmark")


def code_blocks(text: str) -> list[str]:
    """The code blocks of a Markdown ``text`` (fenced or indented), in order, each without its
    fence lines; ``[]`` when there are none."""
    return [token.content for token in _PARSER.parse(text) if token.type in ("fence", "code_block")]


def block_kind(block: Widget) -> str:
    """A short name of the block for the hint line and notices: ``your message``, ``reply``,
    ``tool call``, ``thinking``."""
    if isinstance(block, UserMessage):
        return "your message"
    if isinstance(block, AssistantMessage):
        return "earlier variant" if block.variant else "reply"
    if isinstance(block, ToolCallBlock):
        return f"tool call {block.tool_name}"
    return "thinking"


def block_text(block: Widget) -> str:
    """What copying ``block`` puts on the clipboard: a message's text, a tool call's name,
    arguments and result, the thinking's text."""
    if isinstance(block, (UserMessage, AssistantMessage, ThinkingBlock)):
        return block.text
    if isinstance(block, ToolCallBlock):
        parts = [f"{block.tool_name} {block.arguments_text}", block.output]
        if block.error:
            parts.append(f"error: {block.error}")
        return "\n".join(part for part in parts if part)
    return ""


class BlockNav(Static):
    """The hint line shown in the composer's place while a chat block is highlighted; focused,
    it takes the keys that act on the block. ``log`` is the chat log it moves through (:attr:`chat`)."""

    DEFAULT_CSS = """
    BlockNav { height: auto; min-height: 1; max-height: 3; margin: 0 1; padding: 0 1; background: $accent 20%; color: $text; }
    """

    can_focus = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,alt+up,k", "move(-1)", "Previous block", show=False),
        Binding("down,alt+down,j", "move(1)", "Next block", show=False),
        Binding("home", "move_to(0)", "First block", show=False),
        Binding("end", "move_to(-1)", "Last block", show=False),
        Binding("c", "act('copy')", "Copy", show=False),
        Binding("enter,space", "act('toggle')", "Expand/collapse", show=False),
        Binding("r", "act('retry')", "Retry", show=False),
        Binding("e", "act('edit')", "Edit", show=False),
        Binding("d,delete", "act('hide')", "Hide", show=False),
        Binding("i", "act('details')", "Details", show=False),
        Binding("less_than_sign,comma", "act('variant', -1)", "Previous variant", show=False),
        Binding("greater_than_sign,full_stop", "act('variant', 1)", "Next variant", show=False),
        Binding("escape", "leave", "Back to the composer", show=False),
    ]

    @dataclass
    class Act(Message):
        """Do ``action`` on ``block``: ``copy``, ``code`` (``number``: which code block, from 1),
        ``toggle``, ``retry``, ``edit``, ``hide``, ``details`` or ``variant`` (``number``: -1 the
        previous, 1 the next)."""

        nav: BlockNav
        action: str
        block: Widget
        number: int = 0

    @dataclass
    class Left(Message):
        """Navigation ended: focus goes back to the composer; ``typed`` is the character that
        ended it ("" for Esc), to be typed into the composer."""

        nav: BlockNav
        typed: str = ""

    def __init__(self, log: ChatLog, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.chat = log
        #: The highlighted block (None while not navigating).
        self.current: Widget | None = None
        #: Whether an edit action exists (the app says so; the hint line offers ``e`` then).
        self.can_edit = False

    # ------------------------------------------------------------ the blocks

    def blocks(self) -> list[Widget]:
        """The chat log's blocks that are shown, oldest first."""
        return [child for child in self.chat.children if isinstance(child, BLOCK_TYPES) and child.display]

    def highlight(self, block: Widget | None) -> None:
        """Highlight ``block`` (None: nothing) and scroll it into view; the hint line follows."""
        if self.current is not None:
            self.current.remove_class(HIGHLIGHT)
        self.current = block
        if block is None:
            self.update("")
            return
        block.add_class(HIGHLIGHT)
        # Reading back: the log must not jump to the bottom when a reply streams meanwhile.
        self.chat.anchor(False)
        self.chat.scroll_to_widget(block, animate=False, immediate=True)
        self.update(self.hint())

    def hint(self) -> Text:
        """The hint line: which block of how many, and the keys that act on it."""
        block = self.current
        if block is None:
            return Text("")
        shown = self.blocks()
        where = shown.index(block) + 1 if block in shown else 0
        line = Text(f"▶ {block_kind(block)} {where}/{len(shown)}", style="bold")
        keys = ["↑↓ move", "c copy"]
        codes = code_blocks(block_text(block)) if isinstance(block, (UserMessage, AssistantMessage)) else []
        if len(codes) == 1:
            keys.append("1 copy the code")
        elif codes:
            keys.append(f"1-{min(len(codes), MAX_PICK)} copy code block")
        if isinstance(block, (ToolCallBlock, ThinkingBlock)):
            keys.append("enter expand/collapse")
        if isinstance(block, AssistantMessage):
            keys.append("r retry")
            keys.append("< > variants")
        if isinstance(block, UserMessage):
            keys.append("r resend")
            if self.can_edit:
                keys.append("e edit")
        keys += ["i details", "d hide", "esc back"]
        line.append("  " + " · ".join(keys), style="dim")
        return line

    def start(self, step: int) -> bool:
        """Begin navigating at the newest block (``step`` -1) or the oldest (1); False when the
        chat has no block."""
        shown = self.blocks()
        if not shown:
            return False
        self.highlight(shown[-1] if step < 0 else shown[0])
        return True

    def stop(self) -> None:
        """Remove the highlight (navigation ended)."""
        self.highlight(None)

    # ------------------------------------------------------------ keys

    def action_move(self, step: int) -> None:
        shown = self.blocks()
        if not shown:
            self.post_message(self.Left(self))
            return
        if self.current not in shown:
            self.highlight(shown[-1])
            return
        index = shown.index(self.current) + step  # type: ignore[arg-type]  # checked just above
        self.highlight(shown[max(0, min(index, len(shown) - 1))])

    def action_move_to(self, index: int) -> None:
        shown = self.blocks()
        if shown:
            self.highlight(shown[index])

    def action_act(self, action: str, number: int = 0) -> None:
        block = self.current
        if block is None or block not in self.blocks():
            self.post_message(self.Left(self))
            return
        self.post_message(self.Act(self, action, block, number))

    def action_leave(self) -> None:
        self.post_message(self.Left(self))

    async def _on_key(self, event: events.Key) -> None:
        # Digits pick a code block; any other printable character goes back to the composer and
        # is typed there (the user started writing). Bound keys go on to the bindings (Textual
        # checks a focused widget's bindings after its key handler).
        if event.key in self._bindings.key_to_bindings:
            return
        if event.character is not None and event.character.isdigit() and event.character != "0":
            event.stop()
            event.prevent_default()
            self.action_act("code", int(event.character))
            return
        if event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            self.post_message(self.Left(self, event.character))
