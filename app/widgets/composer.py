"""The multi-line composer: Enter sends, Shift+Enter / Ctrl+J newline, Up/Down recall, Esc cancels.

The chat scrolls from here, keyboard first: PageUp/PageDown always scroll the chat (a composer of
a few lines has no pages of its own); Home/End go to the top/bottom of the chat while the composer
is empty (with text they move the cursor, as in any editor); Ctrl+Home/Ctrl+End always do.

Recall works like a shell: Up on the first line steps back through earlier inputs, Down on the
last line steps forward, and the draft being typed is kept while browsing.

Typing ``@`` at the start of a word opens the file finder (:mod:`app.widgets.file_finder`) above
the composer: the letters typed after it filter the files under the working directory, Up/Down
move through them, Enter or Tab puts ``@path/to/file`` in the message, Esc closes the finder (and
a space, or moving the cursor off the mention, does too). On send, each ``@path`` naming a file is
attached to the message (:mod:`runtime.context.attachments`).

A paste longer than ``LARGE_PASTE_CHARS`` is not put into the editor (wrapping megabytes of text
freezes it); a one-line marker stands in for it and is expanded to the full text when sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from textual import events
from textual.message import Message
from textual.widgets import TextArea

from app.widgets.file_finder import FileFinder

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
#: Characters after which an ``@`` starts a file mention (as runtime.context.attachments reads them).
MENTION_OPENERS = frozenset(" \t([{\"'`")


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
        #: The open ``@`` file finder, and where its ``@`` is (row, column).
        self.finder: FileFinder | None = None
        self._mention_at: tuple[int, int] | None = None

    # ------------------------------------------------------------ the @ file finder

    def _mention_query(self) -> str | None:
        """The text typed after the open mention's ``@`` up to the cursor; None when the cursor
        has left the mention (another line, before the ``@``, or past a space)."""
        if self._mention_at is None:
            return None
        row, column = self._mention_at
        cursor_row, cursor_column = self.cursor_location
        if cursor_row != row or cursor_column <= column or row >= self.document.line_count:
            return None
        line = self.document.get_line(row)
        if column >= len(line) or line[column] != "@":
            return None
        query = line[column + 1 : cursor_column]
        return None if any(ch.isspace() for ch in query) else query

    def open_finder(self, at: tuple[int, int]) -> None:
        """Open the file finder for the ``@`` at ``at`` (row, column), above the composer."""
        self._mention_at = at
        if self.finder is None and self.parent is not None:
            self.finder = FileFinder(Path.cwd(), on_pick=self.pick_file, id="file-finder")
            self.parent.mount(self.finder, before=self)
        self._sync_finder()

    def close_finder(self) -> None:
        """Close the file finder (the typed text stays as it is)."""
        self._mention_at = None
        finder, self.finder = self.finder, None
        if finder is not None:
            finder.remove()

    def _sync_finder(self) -> None:
        query = self._mention_query()
        if query is None:
            self.close_finder()
        elif self.finder is not None:
            self.finder.filter(query)

    def pick_file(self, path: str) -> None:
        """Put ``@path`` (and a space) in place of the mention being typed; close the finder."""
        if self._mention_at is not None:
            start = self._mention_at
            end = self.cursor_location
            if self._mention_query() is None:
                end = (start[0], start[1] + 1)
            self.replace(f"@{path} ", start, end)
        self.close_finder()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.finder is not None:
            self._sync_finder()

    def on_text_area_selection_changed(self, event: TextArea.SelectionChanged) -> None:
        if self.finder is not None and self._mention_query() is None:
            self.close_finder()

    def _finder_key(self, event: events.Key) -> bool:
        """Keys the open finder takes (Up/Down, Enter/Tab to pick, Esc); True when handled."""
        finder = self.finder
        if finder is None:
            return False
        key = event.key
        if key in ("up", "down"):
            finder.move(-1 if key == "up" else 1)
        elif key in ("enter", "tab"):
            path = finder.chosen
            if path is None:
                self.close_finder()
                return key == "tab"  # Enter with nothing to pick sends the message
            self.pick_file(path)
        elif key == "escape":
            self.close_finder()
        else:
            return False
        event.stop()
        event.prevent_default()
        return True

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

    def put_text(self, text: str) -> None:
        """Replace the composer's text with ``text``, the cursor at its end (where a person goes
        on typing: a message given back for editing, a recalled input). Setting ``text`` alone
        leaves Textual's TextArea cursor at the start."""
        self.text = text
        self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if self._finder_key(event):
            return
        if event.character == "@" and not self.read_only:
            row, column = min(self.selection)  # a selection is replaced by the "@"
            before = self.document.get_line(row)[:column]
            await super()._on_key(event)
            if not before or before[-1] in MENTION_OPENERS:
                self.open_finder((row, column))
            return
        if key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.close_finder()
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
                self.put_text(recalled)
                return
        if key == "down" and self.cursor_location[0] == self.document.line_count - 1:
            recalled = self.recall.next()
            if recalled is not None:
                event.stop()
                event.prevent_default()
                self.put_text(recalled)
                return
        await super()._on_key(event)
