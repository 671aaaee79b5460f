"""A one-line notice in the chat log: degraded mode, errors, command output, hints."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.widgets import Static

from app.safe_text import clean

NoticeKind = Literal["info", "degraded", "error", "hint", "command"]

_ICONS: dict[str, str] = {"info": "ℹ", "degraded": "⚠", "error": "✖", "hint": "›", "command": "»"}


class Notice(Static):
    """A marked, literal line (or block) of text; its ``kind`` picks the colour and icon."""

    DEFAULT_CSS = """
    Notice { margin: 1 0 0 0; padding: 0 1; color: $text-muted; }
    Notice.-degraded { color: $warning; background: $warning 10%; border-left: thick $warning; }
    Notice.-error { color: $error; background: $error 10%; border-left: thick $error; }
    Notice.-command { color: $text; background: $boost; border-left: thick $accent; }
    Notice.-hint { color: $text-muted; }
    """

    def __init__(self, text: str, kind: NoticeKind = "info") -> None:
        super().__init__(self._body(text, kind), markup=False, classes=f"-{kind}")
        self.kind = kind
        self.text = text

    @staticmethod
    def _body(text: str, kind: str) -> Text:
        body = Text(f"{_ICONS[kind]} ", style="bold")
        body.append(clean(text))
        return body

    def set_text(self, text: str) -> None:
        self.text = text
        self.update(self._body(text, self.kind))
