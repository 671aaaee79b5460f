"""A tool call in the chat log: a collapsible block with arguments, result, duration, errors."""

from __future__ import annotations

import json

from rich.text import Text
from textual.content import Content
from textual.widgets import Collapsible, Static

from app.safe_text import clean, literal

_STATUS_ICONS = {
    "ok": "✓",
    "running": "…",
    "error": "✖",
    "denied": "⊘",
    "invalid": "✖",
    "unknown": "?",
    "timeout": "⌛",
    "cancelled": "⊘",
}


def format_arguments(arguments: object) -> str:
    """Tool arguments as shown: a JSON value pretty-printed, a raw (unparsable) string as is."""
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(arguments)


class ToolCallBlock(Collapsible):
    """One tool call; starts running, then :meth:`finish` fills in the result."""

    DEFAULT_CSS = """
    ToolCallBlock { margin: 1 8 0 2; border-left: thick $accent; background: $boost; padding: 0; }
    ToolCallBlock.-error { border-left: thick $error; }
    ToolCallBlock > Contents { padding: 0 1 0 2; }
    ToolCallBlock .label { color: $text-muted; text-style: bold; }
    ToolCallBlock .error { color: $error; }
    """

    def __init__(self, call_id: str, name: str, arguments: object = None) -> None:
        self.call_id = call_id
        self.tool_name = clean(name)
        self.arguments_text = format_arguments(arguments if arguments is not None else {})
        self.status = "running"
        self.output = ""
        self.error: str | None = None
        self.duration_ms: float | None = None
        self._result = Static(Text("running…", style="italic"), markup=False)
        self._error = Static("", markup=False, classes="error")
        self._error.display = False
        super().__init__(
            Static(Text("arguments"), classes="label"),
            Static(literal(self.arguments_text), markup=False),
            Static(Text("result"), classes="label"),
            self._result,
            self._error,
            # Collapsible renders any visual; its annotation says str. Content keeps the name literal.
            title=self._make_title(),  # type: ignore[arg-type]
            collapsed=True,
        )

    def _make_title(self) -> Content:
        icon = _STATUS_ICONS.get(self.status, "•")
        parts = [f"⚙ {self.tool_name}", icon if self.status in ("ok", "running") else f"{icon} {self.status}"]
        if self.duration_ms is not None:
            parts.append(f"{self.duration_ms:.0f} ms")
        # A Content object is never parsed as markup, so a hostile tool name stays literal.
        return Content(" · ".join(parts))

    def finish(
        self, *, status: str, output: str, error: str | None = None, duration_ms: float = 0.0, truncated: bool = False
    ) -> None:
        self.status = status
        self.output = clean(output)
        self.error = clean(error) if error else None
        self.duration_ms = duration_ms
        shown = literal(self.output or "(no output)")
        if truncated:
            shown.append("\n… output truncated for the model", style="italic")
        self._result.update(shown)
        if self.error:
            self._error.update(literal(f"error: {self.error}"))
            self._error.display = True
        self.set_class(status != "ok", "-error")
        self.title = self._make_title()  # type: ignore[assignment]  # see __init__
        # The title widget is auto-width; a longer label needs a new layout or it is cut off.
        for title in self.query("CollapsibleTitle"):
            title.refresh(layout=True)
