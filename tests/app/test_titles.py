"""Titles (issue 16, case 9): a conversation started with ``/system ...`` or ``/retry`` is titled
from its first user message, in the header, the sidebar and the store, not "New conversation"
forever; a title the user chose is left alone.

Real Redis, the embedded demo LLM server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _replied(app: HoldfastApp) -> bool:
    return not app.turn_running and bool(app.chat_log.query(AssistantMessage))


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


async def _stored_title(app: HoldfastApp) -> str:
    assert app.rt is not None and app.conversation_id is not None
    return (await app.rt.get_conversation(app.conversation_id)).title


async def test_a_conversation_started_with_system_is_titled_from_its_first_message(
    data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "/system You answer like a pirate.")
        await wait_for(lambda: any("system prompt set" in t for t in _notices(app)), what="/system", pause=pilot.pause)
        assert await _stored_title(app) == "New conversation"  # made by /system, no message yet
        await send(pilot, "Where   is the treasure buried?")
        await wait_for(lambda: _replied(app), what="the reply", pause=pilot.pause)
        await wait_for(
            lambda: app.header.title_text == "Where is the treasure buried?", what="header title", pause=pilot.pause
        )
        assert app.sidebar.title_of(app.conversation_id or "") == "Where is the treasure buried?"
        assert await _stored_title(app) == "Where is the treasure buried?"


async def test_a_conversation_started_with_retry_is_titled_from_its_first_message(
    data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "/retry")
        await wait_for(
            lambda: any("no user message to retry" in t for t in _notices(app)),
            what="/retry refused",
            pause=pilot.pause,
        )
        await wait_for(lambda: not app.turn_running, what="the retry to end", pause=pilot.pause)
        await send(pilot, "Tell me about circuit breakers")
        await wait_for(lambda: _replied(app), what="the reply", pause=pilot.pause)
        await wait_for(
            lambda: app.header.title_text == "Tell me about circuit breakers", what="header title", pause=pilot.pause
        )
        assert await _stored_title(app) == "Tell me about circuit breakers"


async def test_a_title_the_user_chose_is_kept(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "first question")
        await wait_for(lambda: _replied(app), what="the first reply", pause=pilot.pause)
        assert app.rt is not None and app.conversation_id is not None
        await app.rt.rename_conversation(app.conversation_id, "My notes")
        await send(pilot, "second question")
        await wait_for(
            lambda: len(app.chat_log.query(AssistantMessage)) == 2 and not app.turn_running, pause=pilot.pause
        )
        assert await _stored_title(app) == "My notes"
