"""Sticky status lines above the composer: one per degraded backend, updated in place.

An outage used to raise a toast per event (breaker opened, probe failed, journal replayed: N
still waiting...), a storm over the panels. Here each backend has at most one line that says
where it stands now; when the backend is back the line says so and goes away after a few seconds.
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Static

from app.safe_text import one_line

LineKind = Literal["down", "healing", "ok"]
_STYLES: dict[str, tuple[str, str]] = {"down": ("●", "bold red"), "healing": ("◐", "yellow"), "ok": ("●", "green")}
#: Seconds a "recovered" line stays before it goes away.
RECOVERED_SECONDS = 6.0


class BackendLines(Vertical):
    """The lines, by backend name; :meth:`set` writes one (replacing what it said), :meth:`clear` drops it."""

    DEFAULT_CSS = """
    BackendLines { height: auto; max-height: 4; padding: 0 1; }
    BackendLines > Static { height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: dict[str, Static] = {}
        self.texts: dict[str, str] = {}
        self._fade_timers: dict[str, Timer] = {}

    def set(self, name: str, text: str, kind: LineKind = "down") -> None:
        """Show ``text`` as backend ``name``'s one line; ``ok`` lines go away after a few seconds."""
        dot, style = _STYLES[kind]
        body = Text(f"{dot} ", style=style)
        body.append(one_line(text, 200))
        line = self.lines.get(name)
        if line is None:
            line = self.lines[name] = Static(body, markup=False)
            self.mount(line)
        else:
            line.update(body)
        self.texts[name] = text
        timer = self._fade_timers.pop(name, None)
        if timer is not None:
            timer.stop()
        if kind == "ok":
            self._fade_timers[name] = self.set_timer(RECOVERED_SECONDS, lambda: self.clear(name))

    def clear(self, name: str) -> None:
        """Drop backend ``name``'s line (no-op if it has none)."""
        line = self.lines.pop(name, None)
        self.texts.pop(name, None)
        timer = self._fade_timers.pop(name, None)
        if timer is not None:
            timer.stop()
        if line is not None:
            line.remove()
