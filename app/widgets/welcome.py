"""The welcome card an empty conversation shows: what Holdfast is, the keys, the demo commands,
and which model and endpoint the chat is talking to. It goes away with the first message.

It comes in two forms (:attr:`Welcome.compact`): the full card, and a compact one for short
terminals that fits the chat column of an 80x24 terminal whole (the full card is 23 rows there
and opened scrolled to its end: its title, what Holdfast is and the model were out of view).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
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

#: The same keys in three lines of (key, what) pairs, for the compact card.
COMPACT_KEYS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("Enter", "send"), ("Ctrl+J", "newline"), ("↑", "earlier inputs"), ("Esc", "stop the reply")),
    (("Ctrl+N", "new"), ("Ctrl+F", "search"), ("Ctrl+B", "sidebar"), ("Ctrl+R", "panels")),
    (("PgUp PgDn Home End", "scroll"), ("Ctrl+Q", "quit")),
)

#: (command, what it shows), the chaos demo first: it is what Holdfast is for.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("/help", "every command"),
    ("/chaos kill llm", "kill the model server, watch the breaker open"),
    ("/chaos start llm", "bring it back, watch it heal"),
    ("/chaos kill redis", "messages keep saving to a local journal"),
    ("/retry", "answer the last message again"),
)

INTRO = (
    "Holdfast is a chat that keeps going when its backends fail: every message is saved first, "
    "breakers and health are live in the panels, and it heals by itself."
)
#: The compact card's intro: two lines at 80 columns.
COMPACT_INTRO = (
    "Holdfast keeps chatting when its backends fail: every message is saved first, breakers and "
    "health are live, and it heals itself."
)
DEMO_NOTE = "offline demo model: answers are canned, faults are real"


class Welcome(Static):
    """The card; ``model`` and ``endpoint`` are shown as given ("" leaves the line out).
    ``compact`` (settable later, e.g. when the terminal is resized) picks the short form."""

    DEFAULT_CSS = """
    Welcome { margin: 1 0; padding: 1 2; border: round $primary 40%; height: auto; }
    Welcome.-compact { margin: 0; padding: 0 1; }
    """

    #: The short form: no blank lines inside, keys four to a line.
    compact: reactive[bool] = reactive(False)

    def __init__(self, *, model: str = "", endpoint: str = "", demo: bool = False, compact: bool = False) -> None:
        super().__init__("", markup=False)
        self.model = model
        self.endpoint = endpoint
        self.demo = demo
        self.border_title = "Welcome to Holdfast"
        self.set_reactive(Welcome.compact, compact)
        self.set_class(compact, "-compact")

    def on_mount(self) -> None:
        self.update(self.body())

    def watch_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        self.update(self.body())

    def set_endpoint(self, *, model: str, endpoint: str, demo: bool) -> None:
        """Show a model/endpoint learnt after the card was drawn (the runtime finished starting)."""
        self.model, self.endpoint, self.demo = model, endpoint, demo
        self.update(self.body())

    def body(self) -> Group:
        """The card's text (its compact form when :attr:`compact`)."""
        talking = Text("model ", style="bold")
        talking.append(one_line(self.model or "(endpoint default)", 40))
        if self.endpoint:
            talking.append("  @ ", style="dim")
            talking.append(one_line(self.endpoint, 50), style="dim")
        # Its own line: appended to the endpoint it wrapped mid-phrase ("offline demo / model: ...").
        about: list[RenderableType] = [talking, Text(DEMO_NOTE, style="yellow")] if self.demo else [talking]
        commands = Table.grid(padding=(0, 2))
        commands.add_column(style="bold green", no_wrap=True)
        commands.add_column()
        for command, what in COMMANDS:
            commands.add_row(command, what)
        if self.compact:
            keys = [_key_line(pairs) for pairs in COMPACT_KEYS]
            return Group(Text(COMPACT_INTRO), *about, Text(""), *keys, Text(""), commands)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        return Group(Text(INTRO), Text(""), *about, Text(""), table, Text(""), commands)


def _key_line(pairs: tuple[tuple[str, str], ...]) -> Text:
    """``Key what · Key what`` on one line, keys in bold cyan."""
    line = Text()
    for index, (key, what) in enumerate(pairs):
        if index:
            line.append(" · ", style="dim")
        line.append(key, style="bold cyan")
        line.append(f" {what}")
    return line
