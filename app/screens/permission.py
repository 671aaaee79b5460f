"""The tool permission modal: a tool whose policy is "ask" wants to run (allow once / always / deny)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from app.safe_text import literal


class PermissionScreen(ModalScreen[str]):
    DEFAULT_CSS = """
    PermissionScreen { align: center middle; }
    PermissionScreen > Vertical { width: 70; height: auto; max-height: 80%; border: thick $warning;
                                  background: $surface; padding: 1 2; }
    PermissionScreen .args { background: $boost; padding: 0 1; margin: 1 0; max-height: 12; }
    PermissionScreen Horizontal { height: auto; align-horizontal: right; }
    PermissionScreen Button { margin-left: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        ("escape", "dismiss('deny')", "Deny"),
        ("o", "dismiss('once')", "Allow once"),
        ("a", "dismiss('always')", "Always"),
        ("d", "dismiss('deny')", "Deny"),
    ]

    def __init__(self, tool_name: str, arguments: Mapping[str, object]) -> None:
        super().__init__()
        self.tool_name = tool_name
        self.arguments = arguments

    def compose(self) -> ComposeResult:
        try:
            args = json.dumps(self.arguments, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            args = repr(self.arguments)
        title = Text("The model wants to run the tool ")
        title.append_text(literal(self.tool_name, style="bold"))
        with Vertical():
            yield Static(title, markup=False)
            yield Static(literal(args), markup=False, classes="args")
            with Horizontal():
                yield Button("Deny", id="deny", variant="error")
                yield Button("Always allow", id="always")
                yield Button("Allow once", id="once", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#once", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "deny")
