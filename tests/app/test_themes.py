"""Themes (issue 17, item 7): Textual's built-in themes are picked from the command palette (its
"Theme" command), and the pick is remembered across launches (the data dir's ui-state.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.command import CommandPalette

from app.chat_app import HoldfastApp
from app.ui_state import FILE_NAME
from tests.support.app import make_config, palette_pick
from tests.support.polling import wait_for

pytestmark = pytest.mark.ui

SIZE = (80, 24)


def _app(data_dir: Path, **overrides: object) -> HoldfastApp:
    # No runtime: choosing a theme touches none.
    return HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0", **overrides), boot=False)


async def test_a_theme_picked_in_the_palette_is_remembered_across_launches(data_dir: Path) -> None:
    first = _app(data_dir)
    async with first.run_test(size=SIZE) as pilot:
        assert first.theme == "textual-dark"
        used = await palette_pick(pilot, "theme", "theme")  # the palette's Theme command: the built-in themes
        await wait_for(
            lambda: isinstance(first.screen, CommandPalette) and first.screen is not used,
            what="the theme list",
            pause=pilot.pause,
        )
        await palette_pick(pilot, "nord", "nord")
        await wait_for(lambda: first.theme == "nord", what="the nord theme", pause=pilot.pause)
        await wait_for(lambda: first.screen.id == "_default", what="the palette closed", pause=pilot.pause)
    stored = json.loads((data_dir / FILE_NAME).read_text(encoding="utf-8"))
    assert stored["theme"] == "nord"

    # The next launch starts in it, over the configured theme.
    second = _app(data_dir, **{"ui.theme": "gruvbox"})
    async with second.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert second.theme == "nord"
        assert second.ui_state.history == {}  # the rest of the state untouched

    # An unknown remembered theme (a Textual upgrade removed it) falls back to the configured one.
    (data_dir / FILE_NAME).write_text(json.dumps({"theme": "no-such-theme"}), encoding="utf-8")
    third = _app(data_dir, **{"ui.theme": "gruvbox"})
    async with third.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert third.theme == "gruvbox"
