"""The app end to end: real Redis, the embedded demo LLM server, real LanceDB in a temp dir."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from runtime.config import LoadedConfig
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _turn_done(app: HoldfastApp) -> bool:
    return not app.turn_running and not app._queue


def _replies(app: HoldfastApp) -> list[AssistantMessage]:
    return list(app.chat_log.query(AssistantMessage))


async def test_message_streams_a_reply_and_is_saved(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "hello holdfast")
        await wait_for(lambda: _turn_done(app) and bool(_replies(app)), what="the reply", pause=pilot.pause)
        reply = _replies(app)[-1]
        assert "hello holdfast" in reply.text
        assert reply.rendered_text == reply.text  # everything received is on screen
        assert not reply.streaming and not reply.query_one(".badge").display  # no "streaming…" left
        stored = await app.rt.read_messages(app.conversation_id, 10)
        assert [m.role for m in stored] == ["user", "assistant"]
        assert stored[1].content == reply.text
        await wait_for(lambda: app.sidebar.title_of(app.conversation_id) != "", what="sidebar entry", pause=pilot.pause)
        assert "hello holdfast" in app.header.title_text


async def test_tool_call_block_shows_arguments_result_and_duration(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "what is 12*7?")
        await wait_for(
            lambda: _turn_done(app) and bool(app.chat_log.query(ToolCallBlock)), what="tool call", pause=pilot.pause
        )
        block = app.chat_log.query_one(ToolCallBlock)
        assert block.tool_name == "calculator"
        assert "12*7" in block.arguments_text.replace(" ", "")
        assert block.status == "ok" and "84" in block.output
        assert block.duration_ms is not None
        assert "calculator" in str(block.title) and "ms" in str(block.title)
        assert "84" in _replies(app)[-1].text


async def test_markup_and_escape_sequences_render_literally(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    hostile = "[bold red]x[/] \x1b[31mred\x1b[0m \x1b]0;pwned\x07done"
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, hostile)
        await wait_for(lambda: _turn_done(app) and bool(_replies(app)), what="the reply", pause=pilot.pause)
        bubble = app.chat_log.query(UserMessage).last()
        shown = str(bubble.render())
        assert "[bold red]x[/]" in shown and "\x1b" not in shown and "pwned" not in shown
        reply = _replies(app)[-1]
        assert "[bold red]x[/]" in reply.rendered_text and "\x1b" not in reply.rendered_text
        screen = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "[bold red]x[/]" in screen


async def test_escape_cancels_a_streaming_reply_and_keeps_the_partial_text(data_dir: Path, redis_url: str) -> None:
    config = make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 20.0})
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a long story about lighthouses and keepers " * 3)
        await wait_for(
            lambda: bool(_replies(app)) and len(_replies(app)[-1].text) > 10, what="streaming", pause=pilot.pause
        )
        await pilot.press("escape")
        await wait_for(lambda: not app.turn_running, what="cancel", pause=pilot.pause)
        reply = _replies(app)[-1]
        assert reply.interrupted and reply.has_class("-interrupted")
        assert any("cancelled" in n.text for n in app.chat_log.query(Notice))
        # The composer still works after a cancel.
        await send(pilot, "/help")
        await wait_for(
            lambda: any("/chaos" in n.text for n in app.chat_log.query(Notice)), what="help", pause=pilot.pause
        )


async def test_composer_sends_while_a_reply_streams(data_dir: Path, redis_url: str) -> None:
    config = make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 20.0})
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "first question here, " + "with a long tail of words " * 4)
        await wait_for(lambda: app.turn_running, what="first turn", pause=pilot.pause)
        await send(pilot, "second question here")
        assert len(app.chat_log.query(UserMessage)) == 2
        await wait_for(lambda: _turn_done(app) and len(_replies(app)) == 2, what="both replies", pause=pilot.pause)
        stored = await app.rt.read_messages(app.conversation_id, 10)
        users = [m.content for m in stored if m.role == "user"]
        assert len(users) == 2 and users[0].startswith("first question") and users[1] == "second question here"


async def test_switching_conversations_resumes_history(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "alpha conversation")
        await wait_for(lambda: _turn_done(app) and bool(_replies(app)), what="first reply", pause=pilot.pause)
        first = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != first, what="new conversation", pause=pilot.pause)
        assert not app.chat_log.query(UserMessage)
        await send(pilot, "beta conversation")
        await wait_for(lambda: _turn_done(app) and bool(_replies(app)), what="second reply", pause=pilot.pause)
        await wait_for(lambda: len(app.sidebar.conversations) == 2, what="two conversations listed", pause=pilot.pause)
        assert app.sidebar.conversations[0].id == app.conversation_id  # most recent first
        app.sidebar.post_message(app.sidebar.Selected(first))
        await wait_for(
            lambda: [m.text for m in app.chat_log.query(UserMessage)] == ["alpha conversation"],
            what="switch back",
            pause=pilot.pause,
        )
        assert app.conversation_id == first
        assert "alpha conversation" in _replies(app)[-1].text


async def test_the_app_resumes_the_last_conversation_after_a_restart(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "remember this conversation")
        await wait_for(lambda: _turn_done(app) and bool(_replies(app)), what="reply", pause=pilot.pause)
        conv = app.conversation_id
    again = HoldfastApp(app_config)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.conversation_id == conv
        assert [m.text for m in again.chat_log.query(UserMessage)] == ["remember this conversation"]
