"""Pick a model from the endpoint's list: a filter box over an option list (``/model``, Ctrl+O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from app.safe_text import one_line


class ModelPickerScreen(ModalScreen[str | None]):
    """Lists ``models`` (``current`` marked and highlighted); typing filters them (every word
    of the filter in the name, case ignored), Up/Down move, Enter picks, Esc cancels. Dismisses
    with the model's name or None."""

    DEFAULT_CSS = """
    ModelPickerScreen { align: center middle; }
    ModelPickerScreen > Vertical { width: 60; max-width: 100%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    ModelPickerScreen OptionList { height: auto; max-height: 14; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("down", "move(1)", "Next", show=False, priority=True),
        Binding("up", "move(-1)", "Previous", show=False, priority=True),
    ]

    def __init__(
        self, models: Sequence[str], current: str = "", *, heading: str = "Model for this conversation"
    ) -> None:
        super().__init__()
        self.models = list(models)
        self.current = current
        self.heading = heading

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.heading, style="bold"), markup=False)
            yield Input(placeholder="filter…", id="model-filter")
            yield OptionList(id="model-options")
            yield Static("", id="model-none", markup=False)

    def on_mount(self) -> None:
        self._fill("")

    @property
    def options(self) -> OptionList:
        return self.query_one("#model-options", OptionList)

    def shown(self) -> list[str]:
        """The model names the filter leaves, in list order."""
        return [str(self.options.get_option_at_index(i).id) for i in range(self.options.option_count)]

    def _fill(self, query: str) -> None:
        words = query.lower().split()
        options = self.options
        options.clear_options()
        for name in self.models:
            if all(word in name.lower() for word in words):
                label = Text(one_line(name, 200))
                if name == self.current:
                    label.append("  (current)", style="dim")
                options.add_option(Option(label, id=name))
        if options.option_count:
            names = self.shown()
            options.highlighted = names.index(self.current) if self.current in names else 0
        none = self.query_one("#model-none", Static)
        none.display = not options.option_count
        none.update(Text(f"no model matches “{one_line(query, 40)}”; Esc keeps the current one", style="dim"))

    def none_text(self) -> str:
        """The line shown when the filter leaves no model ("" while some are listed)."""
        none = self.query_one("#model-none", Static)
        return str(none.render()) if none.display else ""

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def action_move(self, step: int) -> None:
        options = self.options
        if options.option_count:
            now = options.highlighted or 0
            options.highlighted = max(0, min(now + step, options.option_count - 1))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.options
        if options.highlighted is None or not options.option_count:
            self.app.bell()
            return
        self.dismiss(str(options.get_option_at_index(options.highlighted).id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.id))
