"""The one-line status bar that stands in for the side panels on a narrow terminal.

Below :data:`app.layout.WIDE` columns the Breakers/Health/Context panels would squeeze the chat,
so they collapse into this line: every breaker and every backend as a coloured dot, and the last
prompt's share of the token budget as a percentage. Clicking it (or Ctrl+R) opens the full panels.
It is fed by the panels themselves: each posts :class:`PanelChanged` when it redraws, and the app
hands the panels' rows to :meth:`StatusBar.show`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

#: Breaker state -> dot colour (the Breakers panel's colours).
BREAKER_COLOURS = {"closed": "green", "open": "bold red", "half_open": "yellow"}
#: Health status -> dot colour (the Health panel's colours).
HEALTH_COLOURS = {
    "healthy": "green",
    "degraded": "yellow",
    "unhealthy": "bold red",
    "starting": "cyan",
    "stopped": "bold red",
    "unknown": "dim",
}


@dataclass
class PanelChanged(Message):
    """A side panel redrew: the status bar should show its new state."""

    #: The panel that changed.
    panel: Widget


class StatusBar(Static):
    """``breakers ● llm ● redis │ health ● redis ● llm … │ budget 14% │ Ctrl+R panels``.

    Posts :class:`StatusBar.OpenPanels` when clicked.
    """

    DEFAULT_CSS = """
    StatusBar { height: 1; padding: 0 1; background: $boost; color: $text-muted; }
    StatusBar:hover { background: $primary 20%; }
    """

    class OpenPanels(Message):
        """The user clicked the status bar: show the full panels."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.breakers: dict[str, str] = {}
        self.health: dict[str, str] = {}
        self.budget_percent: int | None = None
        self._shown: Text | None = None

    def show(self, breakers: Mapping[str, str], health: Mapping[str, str], budget_percent: int | None) -> None:
        """Redraw from breaker name -> state, backend name -> health status and the budget used
        by the last prompt (percent, None before the first prompt)."""
        self.breakers = dict(breakers)
        self.health = dict(health)
        self.budget_percent = budget_percent
        line = self.line()
        if line != self._shown:  # the panels post on every change; most leave the dots as they were
            self._shown = line
            self.update(line)

    def line(self, width: int | None = None) -> Text:
        """The bar's text for ``width`` cells (default: the widget's): with names when they fit,
        else dots only, so the budget and the hint stay visible at 80 columns."""
        room = width if width is not None else (self.content_size.width or 78)
        full = self._line(names=True)
        return full if full.cell_len <= room else self._line(names=False)

    def _line(self, *, names: bool) -> Text:
        text = Text()
        for label, states, colours in (
            ("breakers", self.breakers, BREAKER_COLOURS),
            ("health", self.health, HEALTH_COLOURS),
        ):
            text.append(f"{label} ", style="bold")
            if not states:
                text.append("– ", style="dim")
            for name, state in states.items():
                text.append("●", style=colours.get(state, "dim"))
                text.append(f"{_short(name)} " if names else "")
            text.append(" " if not names else "")
            text.append("│ ", style="dim")
        text.append("budget ", style="bold")
        text.append("–" if self.budget_percent is None else f"{self.budget_percent}%")
        text.append("  ctrl+r panels", style="dim italic")
        return text

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.OpenPanels())


def _short(name: str) -> str:
    short = {"embeddings": "emb", "plugins": "tools", "memory": "mem"}
    base, _, rest = name.partition(":")
    return short.get(base, base) + (f":{rest[:8]}" if rest else "")
