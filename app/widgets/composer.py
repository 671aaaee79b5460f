"""The multi-line composer: Enter sends, Shift+Enter / Ctrl+J newline, Up/Down recall, Esc cancels.

The chat scrolls from here, keyboard first: PageUp/PageDown always scroll the chat (a composer of
a few lines has no pages of its own); Home/End go to the top/bottom of the chat while the composer
is empty (with text they move the cursor, as in any editor); Ctrl+Home/Ctrl+End always do.

Recall works like a shell: Up on the first line steps back through earlier inputs, Down on the
last line steps forward, and the draft being typed is kept while browsing.

A paste longer than ``LARGE_PASTE_CHARS`` is not put into the editor (wrapping megabytes of text
freezes it); a one-line marker stands in for it and is expanded to the full text when sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual import events
from textual.message import Message
from textual.widgets import TextArea

#: Pastes longer than this become a marker in the editor and are expanded on send.
LARGE_PASTE_CHARS = 20_000

#: Keys that insert a newline instead of sending (terminals differ in what Shift+Enter sends).
NEWLINE_KEYS = frozenset({"shift+enter", "ctrl+j", "newline", "alt+enter", "ctrl+enter"})

#: Where a scroll key sends the chat.
ScrollWhere = Literal["page_up", "page_down", "top", "bottom"]
#: Keys that always scroll the chat, and Home/End, which do while the composer is empty.
ALWAYS_SCROLL: dict[str, ScrollWhere] = {
    "pageup": "page_up",
    "pagedown": "page_down",
    "ctrl+home": "top",
    "ctrl+end": "bottom",
}
EMPTY_SCROLL: dict[str, ScrollWhere] = {"home": "top", "end": "bottom"}


class InputHistory:
    """Earlier inputs and a cursor into them; ``None`` cursor means "editing a new draft"."""

    def __init__(self, limit: int = 500) -> None:
        self.items: list[str] = []
        self.limit = limit
        self._cursor: int | None = None
        self._draft = ""

    def add(self, text: str) -> None:
        if text.strip() and (not self.items or self.items[-1] != text):
            self.items.append(text)
            del self.items[: -self.limit]
        self._cursor = None
        self._draft = ""

    def previous(self, current: str) -> str | None:
        if not self.items:
            return None
        if self._cursor is None:
            self._draft = current
            self._cursor = len(self.items) - 1
        elif self._cursor > 0:
            self._cursor -= 1
        else:
            return None
        return self.items[self._cursor]

    def next(self) -> str | None:
        if self._cursor is None:
            return None
        if self._cursor < len(self.items) - 1:
            self._cursor += 1
            return self.items[self._cursor]
        self._cursor = None
        return self._draft


class Composer(TextArea):
    DEFAULT_CSS = """
    /* min-width: with both side panels in an 80-column terminal the chat column is ~6 cells,
       and a TextArea wrapping its placeholder at width 0 crashed the app. */
    Composer { height: auto; min-height: 3; max-height: 12; min-width: 12; border: tall $accent 40%; }
    Composer:focus { border: tall $accent; }
    """

    @dataclass
    class Submitted(Message):
        composer: Composer
        text: str

    @dataclass
    class CancelRequested(Message):
        composer: Composer

    @dataclass
    class ScrollChat(Message):
        """A scroll key pressed in the composer: the chat should scroll ``where``."""

        composer: Composer
        where: ScrollWhere

    def __init__(self, *, id: str | None = None, placeholder: str = "") -> None:
        super().__init__(
            id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus", placeholder=placeholder, compact=False
        )
        self.recall = InputHistory()
        #: marker text -> the pasted text it stands for (kept so recalled inputs still expand).
        self.pastes: dict[str, str] = {}

    def expand_pastes(self, text: str) -> str:
        """``text`` with every paste marker replaced by the text it stands for. (Not ``expand``:
        that name is Textual's layout flag on every widget, and a method there reads as True.)"""
        for marker, pasted in self.pastes.items():
            if marker in text:
                text = text.replace(marker, pasted)
        return text

    async def _on_paste(self, event: events.Paste) -> None:
        if len(event.text) <= LARGE_PASTE_CHARS or self.read_only:
            return  # TextArea's own handler inserts it
        event.stop()
        event.prevent_default()
        lines = event.text.count("\n") + 1
        marker = f"⟦pasted text #{len(self.pastes) + 1}: {len(event.text):,} chars, {lines:,} lines⟧"
        self.pastes[marker] = event.text
        start, end = self.selection
        self._replace_via_keyboard(marker, start, end)

    def _set_text(self, text: str) -> None:
        self.text = text
        self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.recall.add(text)
                self.text = ""
                self.post_message(self.Submitted(self, self.expand_pastes(text)))
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        where = ALWAYS_SCROLL.get(key) or (EMPTY_SCROLL.get(key) if not self.text else None)
        if where is not None:
            event.stop()
            event.prevent_default()
            self.post_message(self.ScrollChat(self, where))
            return
        if key == "escape":
            event.stop()
            event.prevent_default()
            self.post_message(self.CancelRequested(self))
            return
        if key == "up" and self.cursor_location[0] == 0:
            recalled = self.recall.previous(self.text)
            if recalled is not None:
                event.stop()
                event.prevent_default()
                self._set_text(recalled)
                return
        if key == "down" and self.cursor_location[0] == self.document.line_count - 1:
            recalled = self.recall.next()
            if recalled is not None:
                event.stop()
                event.prevent_default()
                self._set_text(recalled)
                return
        await super()._on_key(event)
