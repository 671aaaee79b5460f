"""The Health panel: one row per backend (redis, llm, memory, embeddings, plugins).

Rows start as "starting…" so startup progress is visible; they change on :class:`HealthChanged`,
:class:`BackendStatus` and store events, or on a :class:`HealthReport` snapshot given to
:meth:`show_report`. Embedded backends show their pid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from app.safe_text import one_line

ROWS = ("redis", "llm", "memory", "embeddings", "plugins")
STATUS_STYLES = {"healthy": ("●", "green"), "degraded": ("●", "yellow"), "unhealthy": ("●", "bold red"),
                 "starting": ("◌", "cyan"), "stopped": ("○", "bold red"), "unknown": ("○", "dim")}


@dataclass
class HealthRow:
    status: str = "starting"
    detail: str = "starting…"
    latency_ms: float | None = None
    pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class HealthPanel(Static):
    DEFAULT_CSS = """
    HealthPanel { height: auto; border: round $primary 50%; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.border_title = "Health"
        self.rows: dict[str, HealthRow] = {name: HealthRow() for name in ROWS}

    def on_mount(self) -> None:
        self.refresh_table()

    def status_of(self, name: str) -> str:
        return self.rows[name].status if name in self.rows else "unknown"

    def set_row(self, name: str, *, status: str | None = None, detail: str | None = None,
                latency_ms: float | None = None, pid: int | None = None, keep_pid: bool = True) -> None:
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

    def show_report(self, report: Any) -> None:
        """Apply a ``HealthReport`` (``checks``: name -> CheckResult) in one go."""
        for name, result in getattr(report, "checks", {}).items():
            status = getattr(result.status, "value", str(result.status))
            self.set_row(_row_name(name), status=status, detail=_detail(result), latency_ms=result.latency_ms)

    def refresh_table(self) -> None:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column("dot", no_wrap=True, width=1)
        table.add_column("name", no_wrap=True, ratio=3)
        table.add_column("latency", no_wrap=True, justify="right", ratio=2)
        table.add_column("detail", ratio=4, overflow="ellipsis", no_wrap=True)
        for name, row in self.rows.items():
            dot, style = STATUS_STYLES.get(row.status, ("○", "dim"))
            latency = f"{row.latency_ms:.0f}ms" if row.latency_ms is not None else ""
            detail = row.detail if row.pid is None else f"pid {row.pid} · {row.detail}"
            table.add_row(Text(dot, style=style), Text(name, style=style if row.status != "healthy" else ""),
                          Text(latency, style="dim"), Text(one_line(detail, 80), style="dim"))
        self.update(table)


def _row_name(check: str) -> str:
    """Checks may be named ``redis`` or ``plugin:notes``; plugins share one row."""
    return "plugins" if check.startswith(("plugin", "tool")) else check


def _detail(result: Any) -> str:
    if result.error:
        return str(result.error)
    details = dict(result.details or {})
    for key in ("detail", "message", "mode", "model", "provider", "url"):
        if details.get(key):
            return str(details[key])
    return getattr(result.status, "value", "")
