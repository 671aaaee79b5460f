"""A reasoning model's thinking, shown apart from its answer in a collapsible block.

It opens while the model thinks (so the wait shows progress), and collapses by itself when the
answer starts: the thinking is there to look at, not to read past. Stored thinking (an opened
conversation) is drawn collapsed. The text is literal (no Markdown, no markup) and cleaned of
terminal escapes like every model text.
"""

from __future__ import annotations

from textual.widgets import Collapsible, Static

from app.safe_text import clean, literal


class ThinkingBlock(Collapsible):
    """The thinking of one assistant step; ``text`` is what arrived so far (cleaned)."""

    DEFAULT_CSS = """
    ThinkingBlock { height: auto; margin: 1 8 0 0; padding: 0; border: none; background: transparent; }
    ThinkingBlock > Contents { padding: 0 0 0 3; }
    ThinkingBlock > Contents > .thought { color: $text-muted; text-style: italic; height: auto; }
    ThinkingBlock > CollapsibleTitle { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, text: str = "", *, thinking: bool = True) -> None:
        self.text = clean(text)
        self.thinking = thinking
        self._body = Static(literal(self.text), markup=False, classes="thought")
        super().__init__(self._body, title=self._heading(), collapsed=not thinking)

    def _heading(self, collapsed: bool = True) -> str:
        words = len(self.text.split())
        if self.thinking:
            return "thinking…"
        return f"thought ({words} words): click to {'show' if collapsed else 'hide'}"

    def watch_collapsed(self, collapsed: bool) -> None:
        """Keep the heading's hint true: "click to show" while collapsed, "click to hide" open
        (Enter on a highlighted block, or a click, toggles it)."""
        self.title = self._heading(collapsed)

    def append(self, fragment: str) -> None:
        """Add a piece of thinking as it streams."""
        fragment = clean(fragment)
        if not fragment:
            return
        self.text += fragment
        self._body.update(literal(self.text))

    def done(self) -> None:
        """The answer started (or the step ended): collapse, and say how much thinking there was."""
        self.thinking = False
        self.collapsed = True
        self.title = self._heading(True)
