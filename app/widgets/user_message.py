"""A user's message in the chat log, shown literally."""

from __future__ import annotations

from textual.widgets import Static

from app.safe_text import literal


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
        super().__init__(literal(text), markup=False, classes="-queued" if queued else "")
        self.text = text
        self.message_id = message_id

    def mark_sent(self, message_id: str | None = None) -> None:
        self.remove_class("-queued")
        if message_id:
            self.message_id = message_id
