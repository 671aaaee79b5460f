"""A small modal with the details of one chat block: tokens, time, model, source, ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from app.safe_text import clean


class DetailsScreen(ModalScreen[None]):
    """``rows`` of (label, value), shown literally; Esc, Enter or ``i`` closes it."""

    DEFAULT_CSS = """
    DetailsScreen { align: center middle; }
    DetailsScreen > Vertical { width: 72; max-width: 100%; height: auto; max-height: 100%; border: thick $accent; background: $surface; padding: 0 1; }
    DetailsScreen .title { text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        ("escape", "dismiss(None)", "Close"),
        ("enter", "dismiss(None)", "Close"),
        ("i", "dismiss(None)", "Close"),
    ]

    def __init__(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        width = max((len(label) for label, _ in self.rows), default=0)
        body = Text()
        for index, (label, value) in enumerate(self.rows):
            if index:
                body.append("\n")
            body.append(f"{label:<{width}}  ", style="dim")
            body.append(clean(value))
        with Vertical():
            yield Static(Text(self.title_text), classes="title", markup=False)
            yield Static(body, id="details-body", markup=False)
            yield Static(Text("Esc closes", style="dim"), markup=False)

    @property
    def text(self) -> str:
        """The rows as plain text (``label  value`` per line)."""
        return "\n".join(f"{label}  {value}" for label, value in self.rows)
