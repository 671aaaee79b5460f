"""Sticky status lines above the composer: one per degraded backend, updated in place.

An outage used to raise a toast per event (breaker opened, probe failed, journal replayed: N
still waiting...), a storm over the panels. Here each backend has at most one line that says
where it stands now; when the backend is back the line says so and goes away after a few seconds.
A breaker alert (:mod:`app.alerts_view`) is a note on its backend's line, not a toast of its own.
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
        self.kinds: dict[str, LineKind] = {}
        #: A note shown after a line's text until the line goes away (an alert: "alert: 1 webhook
        #: configured"), by backend name.
        self.notes: dict[str, str] = {}
        self._fade_timers: dict[str, Timer] = {}

    def note(self, name: str, note: str, *, text: str, kind: LineKind = "down") -> None:
        """Add ``note`` to backend ``name``'s line (kept when the line is rewritten, dropped with
        it); a backend with no line yet gets one saying ``text``."""
        self.notes[name] = note
        if name in self.texts:
            self._draw(name, self.texts[name], self.kinds[name])
        else:
            self.set(name, text, kind)

    def set(self, name: str, text: str, kind: LineKind = "down") -> None:
        """Show ``text`` as backend ``name``'s one line; ``ok`` lines go away after a few seconds."""
        self._draw(name, text, kind)
        timer = self._fade_timers.pop(name, None)
        if timer is not None:
            timer.stop()
        if kind == "ok":
            self._fade_timers[name] = self.set_timer(RECOVERED_SECONDS, lambda: self.clear(name))

    def _draw(self, name: str, text: str, kind: LineKind) -> None:
        dot, style = _STYLES[kind]
        body = Text(f"{dot} ", style=style)
        body.append(one_line(text, 200))
        if self.notes.get(name):
            body.append(f" · {one_line(self.notes[name], 80)}", style="dim")
        line = self.lines.get(name)
        if line is None:
            line = self.lines[name] = Static(body, markup=False)
            self.mount(line)
        else:
            line.update(body)
        self.texts[name] = text
        self.kinds[name] = kind

    def clear(self, name: str) -> None:
        """Drop backend ``name``'s line (no-op if it has none)."""
        line = self.lines.pop(name, None)
        self.texts.pop(name, None)
        self.kinds.pop(name, None)
        self.notes.pop(name, None)
        timer = self._fade_timers.pop(name, None)
        if timer is not None:
            timer.stop()
        if line is not None:
            line.remove()
