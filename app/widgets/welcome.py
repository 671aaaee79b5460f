"""The welcome card an empty conversation shows: what Holdfast is, the keys, the demo commands,
and which model and endpoint the chat is talking to. It goes away with the first message."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from app.safe_text import one_line

#: (keys, what they do), in the order a new user needs them.
KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send  ·  Ctrl+J newline  ·  ↑ earlier inputs"),
    ("Esc", "stop the reply (the partial text is kept)"),
    ("Ctrl+N", "new conversation  ·  Ctrl+F search"),
    ("Ctrl+B / Ctrl+R", "sidebar / panels"),
    ("PgUp PgDn Home End", "scroll the chat"),
    ("Ctrl+Q", "quit"),
)

#: (command, what it shows), the chaos demo first: it is what Holdfast is for.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("/help", "every command"),
    ("/chaos kill llm", "kill the model server, watch the breaker open"),
    ("/chaos start llm", "bring it back, watch it heal"),
    ("/chaos kill redis", "messages keep saving to a local journal"),
    ("/retry", "answer the last message again"),
)


class Welcome(Static):
    """The card; ``model`` and ``endpoint`` are shown as given ("" leaves the line out)."""

    DEFAULT_CSS = """
    Welcome { margin: 1 0; padding: 1 2; border: round $primary 40%; height: auto; }
    """

    def __init__(self, *, model: str = "", endpoint: str = "", demo: bool = False) -> None:
        super().__init__("", markup=False)
        self.model = model
        self.endpoint = endpoint
        self.demo = demo
        self.border_title = "Welcome to Holdfast"

    def on_mount(self) -> None:
        self.update(self.body())

    def set_endpoint(self, *, model: str, endpoint: str, demo: bool) -> None:
        """Show a model/endpoint learnt after the card was drawn (the runtime finished starting)."""
        self.model, self.endpoint, self.demo = model, endpoint, demo
        self.update(self.body())

    def body(self) -> Group:
        """The card's text."""
        intro = Text(
            "Holdfast is a chat that keeps going when its backends fail: every message is saved first, "
            "breakers and health are live in the panels, and it heals by itself.",
        )
        talking = Text("model ", style="bold")
        talking.append(one_line(self.model or "(endpoint default)", 40))
        if self.endpoint:
            talking.append("  @ ", style="dim")
            talking.append(one_line(self.endpoint, 50), style="dim")
        if self.demo:
            talking.append("  offline demo model: answers are canned, faults are real", style="yellow")
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold cyan", no_wrap=True)
        keys.add_column()
        for key, what in KEYS:
            keys.add_row(key, what)
        commands = Table.grid(padding=(0, 2))
        commands.add_column(style="bold green", no_wrap=True)
        commands.add_column()
        for command, what in COMMANDS:
            commands.add_row(command, what)
        return Group(intro, Text(""), talking, Text(""), keys, Text(""), commands)
