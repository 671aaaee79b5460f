"""Search (issue 16, case 12): Ctrl+F, type, and the sidebar lists the conversations whose title
*or message text* holds the words, best first with a snippet; Enter opens the best match scrolled
to that message, even one older than the page first shown.

Real Redis, the embedded demo LLM server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from app.chat_app import HoldfastApp
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


async def _say(pilot, app: HoldfastApp, text: str) -> None:  # type: ignore[no-untyped-def]
    await send(pilot, text)

    def answered() -> bool:
        reply = app.chat_log.last_reply()
        return not app.turn_running and reply is not None and text in reply.text  # the demo quotes it

    await wait_for(
        answered,
        what=f"the reply to {text!r}",
        pause=pilot.pause,
    )


async def _type(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(*("space" if ch == " " else ch for ch in text))


async def test_ctrl_f_finds_message_text_and_enter_opens_it_at_that_message(data_dir: Path, redis_url: str) -> None:
    # Only the newest 6 messages are drawn when a conversation opens: the match is older.
    app = HoldfastApp(make_config(data_dir, redis_url, **{"ui.max_rendered_messages": 6}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _say(pilot, app, "hello there")
        older = app.conversation_id
        await _say(pilot, app, "my favourite fish is the sturgeon")
        for n in range(4):
            await _say(pilot, app, f"filler message {n}")
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != older, what="a new conversation", pause=pilot.pause)
        await _say(pilot, app, "sturgeon recipes please")
        newer = app.conversation_id
        await wait_for(lambda: len(app.sidebar.conversations) == 2, what="both listed", pause=pilot.pause)

        await pilot.press("ctrl+f")
        assert app.focused is app.query_one("#conv-search", Input)
        # A title match and a message match, the title's first; the message's snippet is shown.
        await _type(pilot, "sturgeon")
        await wait_for(lambda: app.sidebar.hits_query == "sturgeon", what="the search", pause=pilot.pause)
        assert app.sidebar.titles() == [newer, older]
        assert "sturgeon" in app.sidebar.hits[1].snippet

        # Words found only in message text, not in any title.
        app.query_one("#conv-search", Input).value = ""
        await _type(pilot, "favourite fish")
        await wait_for(lambda: app.sidebar.hits_query == "favourite fish", what="the second search", pause=pilot.pause)
        assert app.sidebar.titles() == [older]
        best = app.sidebar.hits[0]
        assert best.message_id is not None

        await pilot.press("enter")
        await wait_for(lambda: app.conversation_id == older, what="the match opened", pause=pilot.pause)
        log = app.chat_log
        await wait_for(lambda: bool(log.query(".-found")), what="the message highlighted", pause=pilot.pause)
        found = log.query(".-found").first()
        assert getattr(found, "message_id", None) == best.message_id
        assert "favourite fish" in getattr(found, "text", "")
        await pilot.pause()
        top = found.virtual_region.y
        assert log.scroll_y <= top < log.scroll_y + log.size.height  # on screen
        assert app.focused is app.composer and app.sidebar.search_text == ""
