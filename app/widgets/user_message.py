"""A user's message in the chat log, shown literally."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.safe_text import literal

#: A message longer than this shows its start and a count of the rest (all of it is sent).
PREVIEW_CHARS = 4_000


def preview(text: str) -> Text:
    if len(text) <= PREVIEW_CHARS:
        return literal(text)
    shown = literal(text[:PREVIEW_CHARS])
    shown.append(f"\n… {len(text) - PREVIEW_CHARS:,} more characters", style="italic dim")
    return shown


class UserMessage(Static):
    """One user message; ``pending`` while it is only queued behind a streaming reply."""

    DEFAULT_CSS = """
    UserMessage {
        margin: 1 0 0 8;
        padding: 0 1;
        background: $primary 15%;
        border-left: thick $primary;
    }
    UserMessage.-queued { opacity: 60%; }
    """

    def __init__(self, text: str, *, message_id: str | None = None, queued: bool = False) -> None:
        super().__init__(preview(text), markup=False, classes="-queued" if queued else "")
        self.text = text
        self.message_id = message_id

    def mark_sent(self, message_id: str | None = None) -> None:
        self.remove_class("-queued")
        if message_id:
            self.message_id = message_id
