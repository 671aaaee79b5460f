"""Appearance of block navigation (issue 17, item 1): a highlighted reply at 80x24, with the hint
line in the composer's place. The runtime is built but not started and the turn is fed as real
events (see tests/app/test_snapshots.py), so every cell is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.widgets.assistant_message import AssistantMessage
from tests.app.test_snapshots import _app, _healthy, _tool_turn

pytestmark = pytest.mark.ui


def test_highlighted_reply_at_80x24(snap_compare: Any, data_dir: Path) -> None:
    app, rt, _ = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        await _tool_turn(app, pilot)
        await pilot.press("alt+up")
        await pilot.pause()
        assert app.block_nav.current is app.chat_log.query(AssistantMessage).last()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_highlighted_tool_block_wide(snap_compare: Any, data_dir: Path) -> None:
    app, rt, _ = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        await _tool_turn(app, pilot)
        await pilot.press("alt+up", "up", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(150, 40), run_before=before)
