"""The Health panel: one row per backend (redis, llm, memory, embeddings, plugins).

Rows start as "starting…" so startup progress is visible; they change on :class:`HealthChanged`,
:class:`BackendStatus` and store events, or on a :class:`HealthReport` snapshot given to
:meth:`show_report`. Embedded backends show their pid.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.widgets import Static

from app.safe_text import one_line
from app.widgets.status_bar import PanelChanged

if TYPE_CHECKING:
    from runtime.host.facade import CheckResult, HealthReport

ROWS = ("redis", "llm", "memory", "embeddings", "plugins")
STATUS_STYLES = {
    "healthy": ("●", "green"),
    "degraded": ("●", "yellow"),
    "unhealthy": ("●", "bold red"),
    "starting": ("◌", "cyan"),
    "stopped": ("○", "bold red"),
    "unknown": ("○", "dim"),
}


@dataclass
class HealthRow:
    """What one row shows: status (a HealthStatus value, or starting/stopped), a detail line,
    the last check's latency in milliseconds and the backend's pid."""

    status: str = "starting"
    detail: str = "starting…"
    latency_ms: float | None = None
    pid: int | None = None


class HealthPanel(Static):
    """The Health panel; rows change through :meth:`set_row` and :meth:`show_report` only."""

    DEFAULT_CSS = """
    HealthPanel { height: auto; border: round $primary 50%; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.border_title = "Health"
        self.rows: dict[str, HealthRow] = {name: HealthRow() for name in ROWS}
        #: What the panel shows now (None before the first draw).
        self._shown: tuple[ShownHealth, ...] | None = None

    def on_mount(self) -> None:
        self.refresh_table()

    def status_of(self, name: str) -> str:
        return self.rows[name].status if name in self.rows else "unknown"

    def set_row(
        self,
        name: str,
        *,
        status: str | None = None,
        detail: str | None = None,
        latency_ms: float | None = None,
        pid: int | None = None,
        keep_pid: bool = True,
    ) -> None:
        row = self.rows.setdefault(name, HealthRow())
        if status is not None:
            row.status = status
        if detail is not None:
            row.detail = detail
        if latency_ms is not None or status is not None:
            row.latency_ms = latency_ms
        if pid is not None or not keep_pid:
            row.pid = pid
        self.refresh_table()

    def show_report(self, report: HealthReport) -> None:
        """Apply a health report (``checks``: name -> CheckResult) in one go."""
        for name, result in report.checks.items():
            self.set_row(
                _row_name(name), status=result.status.value, detail=_detail(result), latency_ms=result.latency_ms
            )

    def refresh_table(self) -> None:
        """Redraw the rows, only if what they show changed: the monitor's snapshot comes every
        ``ui.health_interval`` seconds, and each redraw is a layout of the whole screen (which
        would compete with a streaming reply for the frame)."""
        shown = tuple((name, row.status, row.detail, row.latency_ms, row.pid) for name, row in self.rows.items())
        if shown == self._shown:
            return
        self._shown = shown
        self.update(HealthRows(shown))
        self.post_message(PanelChanged(self))


#: One shown row: name, status, detail, latency (ms), pid.
ShownHealth = tuple[str, str, str, float | None, int | None]

#: Width of the name column: the longest row name ("embeddings").
_NAME_W = max(len(name) for name in ROWS)


class HealthRows:
    """The rows as a Rich renderable laid out for the width it is given (~31 columns in the
    80-column overlay): ``● name  pid N  3ms`` on one line, the latency right-aligned; when that
    does not fit, the pid moves to the row's second line, so a row never wraps mid-figure. A
    detail (a problem, or what the row is doing) follows, indented and wrapped."""

    def __init__(self, rows: tuple[ShownHealth, ...]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        for name, status, detail, latency_ms, pid in self.rows:
            dot, style = STATUS_STYLES.get(status, ("○", "dim"))
            line = Text(f"{dot} ", style=style, no_wrap=True, overflow="ellipsis")
            line.append(name.ljust(_NAME_W), style=style if status != "healthy" else "")
            latency = f"{latency_ms:.0f}ms" if latency_ms is not None else ""
            pid_text = f"pid {pid}" if pid is not None else ""
            extra: list[str] = []
            if pid_text and len(line) + 1 + len(pid_text) + (1 + len(latency) if latency else 0) <= width:
                line.append(" " + pid_text, style="dim")
            elif pid_text:
                extra.append(pid_text)
            if latency:
                room = width - len(line) - len(latency)
                if room >= 1:
                    line.append(" " * room + latency, style="dim")
                else:
                    extra.insert(0, latency)
            line.truncate(width, overflow="ellipsis")
            yield line
            if extra:
                yield Text("  " + "  ".join(extra), style="dim", no_wrap=True, overflow="ellipsis")
            # Only news is worth a line: a problem, or what a row is doing (starting, tool count).
            if detail and detail != status:
                for part in textwrap.wrap(one_line(detail, 160), max(1, width - 2)):
                    yield Text("  " + part, style=style if status != "healthy" else "dim")


def _row_name(check: str) -> str:
    """Checks may be named ``redis`` or ``plugin:notes``; plugins share one row."""
    return "plugins" if check.startswith(("plugin", "tool")) else check


def _detail(result: CheckResult) -> str:
    if result.error:
        return str(result.error)
    details = dict(result.details or {})
    for key in ("detail", "message", "mode", "model", "provider", "url"):
        if details.get(key):
            return str(details[key])
    return result.status.value
