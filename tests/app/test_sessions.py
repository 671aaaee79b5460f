"""The TUI holds a session while it runs, and a relaunch reopens the conversation the user was in
(not merely the newest one), through the per-user pointer that outlives the deleted session."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.user_message import UserMessage
from runtime.config import LoadedConfig
from runtime.state.keys import Keys
from tests.support.app import ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


async def _reply(app: HoldfastApp, pilot: object, text: str) -> None:
    count = len(app.chat_log.query(AssistantMessage))
    await send(pilot, text)  # type: ignore[arg-type]
    await wait_for(
        lambda: not app.turn_running and len(app.chat_log.query(AssistantMessage)) > count,
        what=f"the reply to {text!r}",
        pause=pilot.pause,  # type: ignore[attr-defined]
    )


async def test_a_relaunch_reopens_the_conversation_the_user_was_last_in(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(app, pilot, "alpha is where I was")
        alpha = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != alpha, what="a new conversation", pause=pilot.pause)
        await _reply(app, pilot, "beta is the newest")  # now the most recently updated one
        await wait_for(lambda: len(app.sidebar.conversations) == 2, what="two listed", pause=pilot.pause)
        app.sidebar.post_message(app.sidebar.Selected(alpha or ""))
        await wait_for(lambda: app.conversation_id == alpha, what="back in alpha", pause=pilot.pause)

        async def session_shows_alpha() -> bool:
            assert app.rt is not None
            return [(s.face, s.pid, s.active_conversation_id) for s in await app.rt.list_sessions()] == [
                ("tui", os.getpid(), alpha)
            ]

        await wait_for(session_shows_alpha, what="the TUI's session showing alpha", pause=pilot.pause)

    again = HoldfastApp(app_config)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.conversation_id == alpha
        assert [m.text for m in again.chat_log.query(UserMessage)] == ["alpha is where I was"]
        assert again.rt is not None
        # The first app deleted its session when it stopped: only this one is live.
        [session] = await again.rt.list_sessions()
        assert session.current and session.active_conversation_id == alpha


async def test_a_last_conversation_deleted_elsewhere_falls_back_to_the_newest(
    app_config: LoadedConfig, redis_url: str
) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(app, pilot, "the only conversation")
        only = app.conversation_id
    # Another terminal moved on to a conversation it then deleted.
    client = aioredis.from_url(redis_url)
    try:
        await client.set(Keys(app_config.config.redis.key_prefix).user_last_conversation("tester"), "conv_gone")
    finally:
        await client.aclose()
    again = HoldfastApp(app_config)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.conversation_id == only
        assert [m.text for m in again.chat_log.query(UserMessage)] == ["the only conversation"]
