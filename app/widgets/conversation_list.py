"""The conversations sidebar: most recent first, filter by title, select to open.

It shows the runtime facade's :class:`Conversation` snapshots (``id``, ``title``, ``updated_at``,
``message_count``); the app lists them in a worker and calls :meth:`show`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from app.safe_text import one_line

if TYPE_CHECKING:
    from runtime.host.facade import Conversation


class ConversationList(Vertical):
    """The sidebar: a title filter above the conversations, newest first; posts :class:`Selected`."""

    DEFAULT_CSS = """
    ConversationList { width: 30; border-right: vkey $primary 40%; }
    ConversationList > Input { margin: 0; border: tall $primary 30%; }
    /* No border when focused either: a focus border would shift every row down by one line
       between the mouse-down that focuses the list and the click, opening the row above. */
    ConversationList > OptionList, ConversationList > OptionList:focus {
        height: 1fr; border: none; background: transparent;
    }
    """

    @dataclass
    class Selected(Message):
        """The user picked a conversation to open."""

        #: The id of the picked conversation.
        conversation_id: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.conversations: list[Conversation] = []
        self.current_id: str | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search titles…", id="conv-search")
        yield OptionList(id="conv-options")

    @property
    def options(self) -> OptionList:
        return self.query_one("#conv-options", OptionList)

    def show(self, conversations: Iterable[Conversation], current_id: str | None = None) -> None:
        """List ``conversations`` newest first, marking ``current_id`` (None: keep the current mark)."""
        self.conversations = sorted(conversations, key=lambda c: c.updated_at, reverse=True)
        if current_id is not None:
            self.current_id = current_id
        self._render_options()

    def titles(self) -> list[str]:
        """Ids of the conversations the filter shows, in order."""
        return [opt.id or "" for opt in self._visible()]

    def _visible(self) -> list[Conversation]:
        search = self.query("#conv-search")
        query = search.first(Input).value.strip().lower() if search else ""
        return [c for c in self.conversations if not query or query in str(c.title).lower()]

    def _render_options(self) -> None:
        found = self.query("#conv-options")
        if not found:
            return  # not composed yet, or being torn down: the next show() draws it
        options = found.first(OptionList)
        options.clear_options()
        highlight: int | None = None
        for index, conv in enumerate(self._visible()):
            label = Text(one_line(conv.title or "Untitled", 40), style="bold" if conv.id == self.current_id else "")
            count = conv.message_count
            label.append(f"\n{count} message" if count == 1 else f"\n{count} messages", style="dim")
            options.add_option(Option(label, id=conv.id))
            if conv.id == self.current_id:
                highlight = index
        if highlight is not None:
            options.highlighted = highlight

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._render_options()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Selected(event.option.id))

    def title_of(self, conversation_id: str) -> str:
        """The title of a listed conversation ("" if not listed)."""
        for conv in self.conversations:
            if conv.id == conversation_id:
                return str(conv.title)
        return ""
