"""The Context panel: the prompt budget as a split bar, what was dropped, and recalled memories.

Figures are kept per conversation (:meth:`ContextPanel.record`): the panel shows those of the
conversation on screen (:meth:`ContextPanel.show_conversation`), so a new conversation starts at
"no prompt built yet" and going back shows that conversation's last prompt again.

Fed a ``PromptReport`` (from :class:`PromptBuilt`) and the texts of :class:`MemoriesRecalled`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text
from textual.widgets import Static

from app.safe_text import one_line
from app.widgets.status_bar import PanelChanged

if TYPE_CHECKING:
    from runtime.host.facade import PromptReport

#: (section, report attribute(s), colour) in bar order.
SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("system", ("system_tokens", "overhead_tokens"), "magenta"),
    ("tools", ("tools_tokens",), "cyan"),
    ("files", ("attachments_tokens",), "red"),
    ("memories", ("memories_tokens",), "green"),
    ("history", ("history_tokens", "summary_tokens"), "blue"),
    ("reserved", ("reserved_tokens",), "yellow"),
)


def section_tokens(report: PromptReport) -> dict[str, int]:
    """Tokens per bar section (system, tools, files, memories, history, reserved) of one prompt;
    ``files`` are the ``@path`` attachments of the newest message."""
    return {name: sum(int(getattr(report, attr, 0) or 0) for attr in attrs) for name, attrs, _ in SECTIONS}


def budget_bar(report: PromptReport, width: int) -> Text:
    """A bar of ``width`` cells: each section's share of budget + reserved, then free space."""
    tokens = section_tokens(report)
    total = max(1, report.budget + report.reserved_tokens)
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
    """The last prompt's token budget and the memories recalled for it."""

    DEFAULT_CSS = """
    ContextPanel { height: auto; border: round $primary 50%; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.border_title = "Context"
        self.report: PromptReport | None = None
        self.memories: tuple[str, ...] = ()
        self.memory_note = ""
        #: The conversation whose figures are shown (None: not bound to one).
        self.conversation_id: str | None = None
        #: conversation id -> (its last prompt's report, recalled memories, memory note).
        self._figures: dict[str, tuple[PromptReport | None, tuple[str, ...], str]] = {}
        #: (report, memories, note, width) drawn last: a redraw with the same is skipped.
        self._shown: tuple[PromptReport | None, tuple[str, ...], str, int] | None = None

    def record(
        self,
        conversation_id: str,
        *,
        report: PromptReport | None = None,
        memories: tuple[str, ...] | list[str] | None = None,
        note: str | None = None,
    ) -> None:
        """Keep a new prompt report and/or recalled memories of ``conversation_id`` (fields left
        None keep their value); shown at once if that conversation is on screen."""
        old_report, old_memories, old_note = self._figures.get(conversation_id, (None, (), ""))
        self._figures[conversation_id] = (
            report if report is not None else old_report,
            tuple(memories) if memories is not None else old_memories,
            note if note is not None else (old_note if memories is None else ""),
        )
        if self.conversation_id is None:  # not bound to a conversation yet: this one is on screen
            self.conversation_id = conversation_id
        if conversation_id == self.conversation_id:
            self.show_conversation(conversation_id)

    def show_conversation(self, conversation_id: str) -> None:
        """Show the figures of ``conversation_id`` ("no prompt built yet" when it has none)."""
        self.conversation_id = conversation_id
        self.report, self.memories, self.memory_note = self._figures.get(conversation_id, (None, (), ""))
        self.refresh_panel()

    def on_mount(self) -> None:
        self.refresh_panel()

    def on_resize(self) -> None:
        self.refresh_panel()

    def show_report(self, report: PromptReport) -> None:
        """Show the budget of the prompt just built."""
        self.report = report
        self.refresh_panel()

    def show_memories(self, texts: tuple[str, ...] | list[str], note: str = "") -> None:
        """Show the recalled memories (and ``note``, e.g. "memory offline")."""
        self.memories = tuple(texts)
        self.memory_note = note
        self.refresh_panel()

    @property
    def budget_percent(self) -> int | None:
        """The last prompt's tokens as a share of its budget (percent), None before the first prompt."""
        if self.report is None:
            return None
        return round(100 * self.report.prompt_tokens / max(1, self.report.budget))

    def refresh_panel(self) -> None:
        """Redraw, only if the figures or the width changed (each redraw is a layout of the whole
        screen, which would compete with a streaming reply for the frame)."""
        report = self.report
        width = max(10, self.content_size.width or 30)
        shown = (report, self.memories, self.memory_note, width)
        if shown == self._shown:
            return
        self._shown = shown
        self.post_message(PanelChanged(self))
        if report is None:
            self.update(Text("no prompt built yet", style="dim italic"))
            return
        prompt = report.prompt_tokens
        budget = report.budget
        lines: list[RenderableType] = [
            Text(f"{prompt:,} / {budget:,} tokens" + (" ≈" if report.approximate else "")),
            budget_bar(report, width),
        ]
        legend = Text()
        for name, tokens in section_tokens(report).items():
            if name == "files" and not tokens:
                continue  # only a prompt with @file attachments has this section
            colour = next(c for n, _, c in SECTIONS if n == name)
            legend.append("■ ", style=colour)
            legend.append(f"{name} {tokens:,}  ")
        lines.append(legend)
        facts = [f"kept {report.messages_included} msgs"]
        if report.messages_dropped:
            facts.append(f"dropped {report.messages_dropped}")
        if report.summary_used:
            facts.append(f"summary ({report.summary_method or 'llm'})")
        if report.approximate:
            facts.append(f"approx. counts ({report.encoding})")
        if report.truncated:
            facts.append("truncated")
        lines.append(Text(" · ".join(facts), style="dim"))
        for figure in getattr(report, "attachments", ()):
            # A file's name is the user's text: plain Text, never markup; control characters gone.
            line = Text("@ ", style="red")
            line.append(one_line(figure.path, 60))
            line.append(f" {figure.tokens:,} tok")
            if figure.truncated:
                line.append(f" (cut, of {figure.total_tokens:,})", style="yellow")
            lines.append(line)
        lines.append(Text("memories recalled:" if self.memories else "no memories recalled", style="bold"))
        if self.memory_note:
            lines.append(Text(self.memory_note, style="yellow"))
        for text in self.memories[:5]:
            lines.append(Text("• " + one_line(text, 200), style="green"))
        self.update(Group(*lines))
