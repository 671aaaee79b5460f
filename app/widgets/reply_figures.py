"""The line of figures under a reply (issue 17): tokens in and out (``est.`` when the endpoint
reported none and they were counted here), time to first token, total time, tokens per second,
and the cost when ``[pricing]`` has a price for the model.

The figures come from the reply's ``AssistantSaved`` event while it streams and from the stored
message's metadata when a conversation is reopened (:class:`runtime.core.figures.ReplyFigures`),
so both show the same line. One row, never wrapped: a narrow terminal cuts it with an ellipsis.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from runtime.core.figures import ReplyFigures, figures_line


class ReplyFiguresLine(Static):
    """One muted, literal row of a reply's :class:`ReplyFigures` (see the module doc)."""

    DEFAULT_CSS = """
    ReplyFiguresLine {
        height: 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, figures: ReplyFigures) -> None:
        self.figures = figures
        super().__init__(Text(figures_line(figures), style="dim"), markup=False)

    @property
    def text(self) -> str:
        """The line as shown (before any ellipsis)."""
        return figures_line(self.figures)
