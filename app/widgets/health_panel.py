"""The Health panel: one row per backend (redis, llm, memory, embeddings, plugins).

Rows start as "starting…" so startup progress is visible; they change on :class:`HealthChanged`,
:class:`BackendStatus` and store events, or on a :class:`HealthReport` snapshot given to
:meth:`show_report`. Embedded backends show their pid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
        self._shown: Text | None = None

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
        lines: list[Text] = []
        for name, row in self.rows.items():
            dot, style = STATUS_STYLES.get(row.status, ("○", "dim"))
            line = Text(f"{dot} ", style=style)
            line.append(f"{name:<11}", style=style if row.status != "healthy" else "")
            line.append(f"{'pid ' + str(row.pid) if row.pid is not None else '':<10}", style="dim")
            if row.latency_ms is not None:
                line.append(f"{row.latency_ms:>5.0f}ms", style="dim")
            lines.append(line)
            # Only news is worth a line: a problem, or what a row is doing (starting, tool count).
            if row.detail and row.detail != row.status:
                lines.append(Text("  " + one_line(row.detail, 160), style=style if row.status != "healthy" else "dim"))
        table = Text("\n").join(lines)
        if table == self._shown:
            return
        self._shown = table
        self.update(table)
        self.post_message(PanelChanged(self))


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
