"""The Breakers panel: one row per service with state, failures, countdown and last error.

It renders the :class:`BreakerSnapshot` objects handed to :meth:`show` (from the runtime
facade's ``breaker_snapshots()``); it never asks a backend anything. While a breaker is open a one-second timer re-renders the
countdown from the last snapshot and the time it was taken (the injected clock).
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text
from textual.widgets import Static

from app.safe_text import one_line
from app.widgets.status_bar import PanelChanged

if TYPE_CHECKING:
    from runtime.host.facade import BreakerSnapshot

#: What the last column means (the panel's legend).
LEGEND = "fails: in a row · window rate"

STATE_STYLES = {"closed": ("● CLOSED", "green"), "open": ("● OPEN", "bold red"), "half_open": ("◐ HALF-OPEN", "yellow")}


class BreakersPanel(Static):
    """One row per breaker: state (with the seconds left while open), failures and failure rate,
    the last error while not closed. ``clock`` (monotonic seconds) runs the countdown."""

    DEFAULT_CSS = """
    BreakersPanel { height: auto; border: round $primary 50%; border-title-color: $text; padding: 0 1; }
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.border_title = "Breakers"
        self._clock = clock
        self.rows: dict[str, BreakerSnapshot] = {}
        self._taken_at = clock()
        #: What the table shows now (None before the first draw): a redraw is skipped when equal.
        self._shown: tuple[ShownRow, ...] | None = None

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.refresh_table()

    def show(self, snapshots: Iterable[BreakerSnapshot]) -> None:
        """Replace the rows with these snapshots (taken now)."""
        self.rows = {snap.name: snap for snap in snapshots}
        self._taken_at = self._clock()
        self.refresh_table()

    def state_of(self, name: str) -> str | None:
        """The shown state of breaker ``name`` (``closed``/``open``/``half_open``), None if not shown."""
        row = self.rows.get(name)
        return row.state if row else None

    def _tick(self) -> None:
        if any(row.state == "open" for row in self.rows.values()):
            self.refresh_table()

    def countdown(self, row: BreakerSnapshot) -> float | None:
        """Seconds until an open breaker lets a probe through, counted from the snapshot; None if not open."""
        until = row.seconds_until_half_open
        if until is None or row.state != "open":
            return None
        return max(0.0, float(until) - (self._clock() - self._taken_at))

    def _shown_rows(self) -> tuple[ShownRow, ...]:
        """Per row, what the table shows: name, state, whole seconds left, forced, fails, last error."""
        shown = []
        for name in sorted(self.rows, key=breaker_order):
            row = self.rows[name]
            left = self.countdown(row)
            shown.append(
                (
                    name,
                    row.state,
                    None if left is None else round(left),
                    row.forced,
                    f"{row.failure_count} · {row.failure_rate:.0%}",
                    one_line(row.last_error, 60) if row.last_error and row.state != "closed" else "",
                )
            )
        return tuple(shown)

    def refresh_table(self) -> None:
        """Redraw the table, only if what it shows changed: the app re-reads the breakers every
        ``ui.health_interval`` seconds, and each redraw is a layout of the whole screen plus a
        Rich table render (which would compete with a streaming reply for the frame)."""
        shown = self._shown_rows()
        if shown == self._shown:
            return
        self._shown = shown
        self.post_message(PanelChanged(self))
        if not self.rows:
            self.update(Text("no calls yet", style="dim italic"))
            return
        self.update(Group(BreakerRows(shown), Text(LEGEND, style="dim italic")))


#: One shown row: name, state, whole seconds left, forced, fails, last error.
ShownRow = tuple[str, str, int | None, bool, str, str]


class BreakerRows:
    """The rows as a Rich renderable laid out for the width it is given (the panel is ~31 columns
    in the 80-column overlay, ~40 beside the chat).

    Names and states are never wrapped: each column is as wide as its longest entry, and a name
    is cut with an ellipsis only when it is longer than the whole width. A row whose fails
    figure does not fit after its name and state shows the figure on a second line, right-aligned.
    The last error of a breaker that is not closed follows, wrapped and indented."""

    def __init__(self, rows: tuple[ShownRow, ...]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        states = [state_text(state, left, forced) for _, state, left, forced, _, _ in self.rows]
        name_w = min(width, max(len(row[0]) for row in self.rows))
        state_w = max(len(state) for state in states)
        for (name, _, _, _, fails, last_error), state in zip(self.rows, states, strict=True):
            label = Text(name, no_wrap=True, overflow="ellipsis")
            label.truncate(width, overflow="ellipsis")
            if name_w + 1 + state_w <= width:
                line = Text(no_wrap=True)
                line.append_text(label)
                line.pad_right(name_w - len(label) + 1)
                line.append_text(state)
                room = width - name_w - 1 - len(state) - 1
                if len(fails) <= room:
                    line.pad_right(1 + room - len(fails))
                    line.append(fails)
                    yield line
                else:
                    yield line
                    yield Text(" " * max(0, width - len(fails)) + fails, no_wrap=True)
            else:
                # Not even name and state side by side: the name alone, then state and fails.
                yield label
                below = Text("  ", no_wrap=True, overflow="ellipsis")
                below.append_text(state)
                below.append(f"  {fails}")
                below.truncate(width, overflow="ellipsis")
                yield below
            for part in textwrap.wrap(last_error, max(1, width - 2)):
                yield Text("  " + part, style="dim")


def state_text(state_name: str, left: int | None, forced: bool) -> Text:
    """A breaker's state as shown: the label in its colour, then the seconds left while open
    (``" 12s"``) or ``" forced"`` when forced by /chaos or the CLI."""
    label, style = STATE_STYLES.get(state_name, (state_name.upper(), "white"))
    state = Text(label, style=style)
    if left is not None:
        state.append(f" {left}s", style="red")
    elif forced:
        state.append(" forced", style="dim")
    return state


_ORDER = ("llm", "redis", "memory", "embeddings")


def breaker_order(name: str) -> tuple[int, str]:
    """Sort key: llm, redis, memory, embeddings first, then the rest (tools) by name."""
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)
