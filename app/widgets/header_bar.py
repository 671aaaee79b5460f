"""The header: app name, model (demo clearly labelled), endpoint and conversation title."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.safe_text import one_line
from runtime.core.safe_text import mask_url_credentials


class HeaderBar(Static):
    DEFAULT_CSS = """
    HeaderBar { dock: top; height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    model: reactive[str] = reactive("")
    endpoint: reactive[str] = reactive("")
    title_text: reactive[str] = reactive("")
    demo: reactive[bool] = reactive(False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)

    def render(self) -> Text:
        text = Text("⚓ Holdfast", style="bold")
        if self.model:
            text.append("  model ", style="dim")
            text.append(one_line(self.model, 40), style="bold cyan")
            if self.demo:
                text.append(" DEMO", style="bold black on yellow")
        if self.endpoint:
            text.append("  @ ", style="dim")
            # A base URL may carry credentials (http://user:key@host/v1): never on screen.
            text.append(one_line(mask_url_credentials(self.endpoint), 50), style="dim")
        if self.title_text:
            text.append("  │ ", style="dim")
            text.append(one_line(self.title_text, 60), style="italic")
        return text
