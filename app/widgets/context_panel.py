"""The Context panel: the prompt budget as a split bar, what was dropped, and recalled memories.

Fed a ``PromptReport`` (from :class:`PromptBuilt`) and the texts of :class:`MemoriesRecalled`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from app.safe_text import one_line

#: (section, report attribute(s), colour) in bar order.
SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("system", ("system_tokens", "overhead_tokens"), "magenta"),
    ("tools", ("tools_tokens",), "cyan"),
    ("memories", ("memories_tokens",), "green"),
    ("history", ("history_tokens", "summary_tokens"), "blue"),
    ("reserved", ("reserved_tokens",), "yellow"),
)


def section_tokens(report: Any) -> dict[str, int]:
    return {name: sum(int(getattr(report, attr, 0) or 0) for attr in attrs) for name, attrs, _ in SECTIONS}


def budget_bar(report: Any, width: int) -> Text:
    """A bar of ``width`` cells: each section's share of budget + reserved, then free space."""
    tokens = section_tokens(report)
    total = max(1, int(getattr(report, "budget", 0) or 0) + int(getattr(report, "reserved_tokens", 0) or 0))
    bar = Text()
    used = 0
    for name, _, colour in SECTIONS:
        cells = round(tokens[name] / total * width)
        if tokens[name] and cells == 0:
            cells = 1  # a non-empty section stays visible
        cells = min(cells, width - used)
        bar.append("█" * cells, style=colour)
        used += cells
    bar.append("░" * max(0, width - used), style="dim")
    return bar


class ContextPanel(Static):
    DEFAULT_CSS = """
    ContextPanel { height: auto; border: round $primary 50%; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.border_title = "Context"
        self.report: Any = None
        self.memories: tuple[str, ...] = ()
        self.memory_note = ""

    def on_mount(self) -> None:
        self.refresh_panel()

    def on_resize(self) -> None:
        self.refresh_panel()

    def show_report(self, report: Any) -> None:
        self.report = report
        self.refresh_panel()

    def show_memories(self, texts: tuple[str, ...] | list[str], note: str = "") -> None:
        self.memories = tuple(texts)
        self.memory_note = note
        self.refresh_panel()

    def refresh_panel(self) -> None:
        report = self.report
        if report is None:
            self.update(Text("no prompt built yet", style="dim italic"))
            return
        width = max(10, self.content_size.width or 30)
        prompt = int(getattr(report, "prompt_tokens", 0) or 0)
        budget = int(getattr(report, "budget", 0) or 0)
        lines: list[Any] = [
            Text(f"{prompt:,} / {budget:,} tokens" + (" ≈" if getattr(report, "approximate", False) else "")),
            budget_bar(report, width),
        ]
        legend = Text()
        for name, tokens in section_tokens(report).items():
            colour = next(c for n, _, c in SECTIONS if n == name)
            legend.append("■ ", style=colour)
            legend.append(f"{name} {tokens:,}  ")
        lines.append(legend)
        facts = [f"kept {getattr(report, 'messages_included', 0)} msgs"]
        dropped = int(getattr(report, "messages_dropped", 0) or 0)
        if dropped:
            facts.append(f"dropped {dropped}")
        if getattr(report, "summary_used", False):
            facts.append(f"summary ({getattr(report, 'summary_method', None) or 'llm'})")
        if getattr(report, "approximate", False):
            facts.append(f"approx. counts ({getattr(report, 'encoding', '?')})")
        if getattr(report, "truncated", False):
            facts.append("truncated")
        lines.append(Text(" · ".join(facts), style="dim"))
        lines.append(Text("memories recalled:" if self.memories else "no memories recalled", style="bold"))
        if self.memory_note:
            lines.append(Text(self.memory_note, style="yellow"))
        for text in self.memories[:5]:
            lines.append(Text("• " + one_line(text, 200), style="green"))
        self.update(Group(*lines))
