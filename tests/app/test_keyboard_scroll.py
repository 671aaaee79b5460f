"""Keyboard-first scrolling (issue 16, case 11): PageUp/PageDown/Home/End scroll the chat with the
composer focused; Home/End move the cursor instead while the composer holds text, Ctrl+Home and
Ctrl+End scroll anyway; End follows the tail again.

Real Redis, the embedded demo LLM server (its long story fills many screens).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (120, 30)


async def test_page_and_home_end_keys_scroll_the_chat_from_the_composer(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.max_output_tokens": 8000}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a long story")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(AssistantMessage)),
            what="the story",
            pause=pilot.pause,
        )
        log = app.chat_log
        await wait_for(lambda: log.max_scroll_y > 3 * log.size.height, what="a chat of many pages", pause=pilot.pause)
        await wait_for(lambda: log.scroll_y == log.max_scroll_y, what="the tail followed", pause=pilot.pause)
        assert app.focused is app.composer

        await pilot.press("home")
        await wait_for(lambda: log.scroll_y == 0, what="Home: the top", pause=pilot.pause)
        await pilot.press("pagedown")
        await wait_for(lambda: log.scroll_y > 0, what="PageDown", pause=pilot.pause)
        one_page = log.scroll_y
        assert log.size.height // 2 <= one_page <= log.size.height  # a page, not a line, not the end
        await pilot.press("pagedown")
        await wait_for(lambda: log.scroll_y >= 2 * one_page - 1, what="PageDown again", pause=pilot.pause)
        await pilot.press("pageup")
        await wait_for(lambda: abs(log.scroll_y - one_page) <= 1, what="PageUp", pause=pilot.pause)
        await pilot.press("end")
        await wait_for(lambda: log.scroll_y == log.max_scroll_y, what="End: the bottom", pause=pilot.pause)

        # With text in the composer, Home moves its cursor; Ctrl+Home still scrolls the chat.
        app.composer.text = "draft"
        app.composer.move_cursor((0, 5))
        await pilot.press("home")
        await pilot.pause()
        assert app.composer.cursor_location == (0, 0)
        assert log.scroll_y == log.max_scroll_y
        await pilot.press("ctrl+home")
        await wait_for(lambda: log.scroll_y == 0, what="Ctrl+Home: the top", pause=pilot.pause)
        await pilot.press("ctrl+end")
        await wait_for(lambda: log.scroll_y == log.max_scroll_y, what="Ctrl+End: the bottom", pause=pilot.pause)
        assert app.composer.text == "draft" and app.focused is app.composer
