"""The Breakers panel: one row per service with state, failures, countdown and last error.

It renders the :class:`BreakerSnapshot` objects handed to :meth:`show` (from the runtime
facade's ``breaker_snapshots()``); it never asks a backend anything. While a breaker is open a one-second timer re-renders the
countdown from the last snapshot and the time it was taken (the injected clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
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
        self._shown: tuple[tuple[str, str, int | None, bool, str, str], ...] | None = None

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

    def _shown_rows(self) -> tuple[tuple[str, str, int | None, bool, str, str], ...]:
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
        table = Table.grid(padding=(0, 1), expand=True)
        # Names fold onto a second line rather than being cut ("memory:upk…" told nobody anything).
        table.add_column("service", overflow="fold", ratio=3)
        table.add_column("state", no_wrap=True, ratio=4)
        table.add_column("fails", no_wrap=True, justify="right", ratio=2)
        for name, state_name, left, forced, fails, last_error in shown:
            label, style = STATE_STYLES.get(state_name, (state_name.upper(), "white"))
            state = Text(label, style=style)
            if left is not None:
                state.append(f" {left}s", style="red")
            elif forced:
                state.append(" forced", style="dim")
            table.add_row(Text(name), state, Text(fails))
            if last_error:
                table.add_row(Text(""), Text(last_error, style="dim"), Text(""))
        self.update(Group(table, Text(LEGEND, style="dim italic")))


_ORDER = ("llm", "redis", "memory", "embeddings")


def breaker_order(name: str) -> tuple[int, str]:
    """Sort key: llm, redis, memory, embeddings first, then the rest (tools) by name."""
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)
