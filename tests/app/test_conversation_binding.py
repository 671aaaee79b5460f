"""Turns belong to their conversation (issue 16, cases 3-6): the sidebar opens the row clicked,
a reply streaming in A keeps streaming into A while the user is elsewhere and is shown live on
the way back, queued follow-ups go to the conversation they were typed in, and a message sent
before start-up finishes is shown and answered in the conversation that opens.

Real Redis, the embedded demo LLM server (slowed down with ``llm.demo_tokens_per_second``).
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.user_message import UserMessage
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _done(app: HoldfastApp) -> bool:
    return not app.turn_running and not app._queue


def _users(app: HoldfastApp) -> list[str]:
    return [m.text for m in app.chat_log.query(UserMessage)]


def _replies(app: HoldfastApp) -> list[AssistantMessage]:
    return list(app.chat_log.query(AssistantMessage))


def _errors(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice) if n.kind == "error"]


async def _stored(app: HoldfastApp, conversation_id: str) -> list[tuple[str, str]]:
    assert app.rt is not None
    return [(m.role, m.content) for m in await app.rt.read_messages(conversation_id, 50)]


async def test_clicking_the_second_conversation_with_the_composer_focused_opens_it(
    data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "older conversation")
        await wait_for(lambda: _done(app) and bool(_replies(app)), what="first reply", pause=pilot.pause)
        older = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != older, what="new conversation", pause=pilot.pause)
        await send(pilot, "newer conversation")
        await wait_for(lambda: _done(app) and bool(_replies(app)), what="second reply", pause=pilot.pause)
        await wait_for(lambda: len(app.sidebar.conversations) == 2, what="two listed", pause=pilot.pause)
        app.composer.focus()
        await pilot.pause()
        assert app.sidebar.titles()[1] == older  # rows are two lines each: the second starts at y=2
        await pilot.click("#conv-options", offset=(4, 2))
        await wait_for(lambda: app.conversation_id == older, what="the clicked conversation", pause=pilot.pause)
        await wait_for(lambda: _users(app) == ["older conversation"], what="its history", pause=pilot.pause)


async def test_a_reply_streaming_in_a_keeps_going_while_away_and_is_live_on_return(
    data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 15.0}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "first question here, " + "with a long tail of words " * 4)
        await wait_for(
            lambda: bool(_replies(app)) and len(_replies(app)[-1].text) > 5, what="streaming", pause=pilot.pause
        )
        a = app.conversation_id
        assert a is not None
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != a, what="conversation B", pause=pilot.pause)
        assert not _replies(app) and not _users(app)  # A's stream does not leak into B
        assert app.turn_running
        app.sidebar.post_message(app.sidebar.Selected(a))
        await wait_for(lambda: app.conversation_id == a, what="back to A", pause=pilot.pause)
        # The live stream is shown again, below A's stored history, while it still runs.
        await wait_for(
            lambda: bool(_replies(app)) and _replies(app)[-1].streaming,
            what="the live reply in A",
            pause=pilot.pause,
        )
        assert app.turn_running
        await wait_for(lambda: _done(app), what="turn ends", pause=pilot.pause)
        stored = await _stored(app, a)
        assert [role for role, _ in stored] == ["user", "assistant"]
        replies = _replies(app)
        assert len(replies) == 1 and replies[0].text == stored[1][1] and not replies[0].streaming
        assert _errors(app) == []  # no "turn failed: NoMatches '.badge'"


async def test_a_queued_follow_up_goes_to_the_conversation_it_was_typed_in(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 15.0}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "question in A, " + "with a long tail of words " * 4)
        await wait_for(lambda: app.turn_running, what="A's turn", pause=pilot.pause)
        a = app.conversation_id
        assert a is not None
        await send(pilot, "queued follow-up in A")
        assert len(app._queue) == 1
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != a, what="conversation B", pause=pilot.pause)
        b = app.conversation_id
        assert b is not None
        assert _users(app) == []  # the queued bubble stayed with A
        await wait_for(lambda: _done(app), timeout=60, what="both of A's turns", pause=pilot.pause)
        assert _users(app) == [] and not _replies(app)
        stored_a = await _stored(app, a)
        assert [c for r, c in stored_a if r == "user"][1] == "queued follow-up in A"
        assert [r for r, _ in stored_a] == ["user", "assistant", "user", "assistant"]
        assert await _stored(app, b) == []


async def test_a_message_sent_before_start_up_finishes_is_shown_and_answered(data_dir: Path, redis_url: str) -> None:
    # Typed ahead: submitted from the composer as the app mounts, before the runtime's boot
    # starts (after the first frame). Sent with the Pilot, it raced a boot that is quick once a
    # test before it imported everything, and was sometimes sent after start-up.
    app = HoldfastApp(make_config(data_dir, redis_url), typed_ahead=["sent during start-up"])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(lambda: _done(app) and bool(_replies(app)), what="the reply", pause=pilot.pause)
        assert _users(app) == ["sent during start-up"]
        assert "sent during start-up" in _replies(app)[-1].text
        assert app.conversation_id is not None
        assert [r for r, _ in await _stored(app, app.conversation_id)] == ["user", "assistant"]


async def test_two_messages_sent_before_start_up_finishes_each_get_their_reply_below_them(
    data_dir: Path, redis_url: str
) -> None:
    # Typed ahead: both are submitted from the composer as the app mounts, before the runtime's
    # boot even starts (it starts after the first frame), so both wait for start-up.
    typed = ["first during start-up", "second during start-up"]
    app = HoldfastApp(make_config(data_dir, redis_url), typed_ahead=typed)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(lambda: _done(app) and len(_replies(app)) == 2, what="both replies", pause=pilot.pause)
        shown = [
            (type(w).__name__, w.text) for w in app.chat_log.children if isinstance(w, (UserMessage, AssistantMessage))
        ]
        assert [kind for kind, _ in shown] == ["UserMessage", "AssistantMessage"] * 2
        assert shown[0][1] == "first during start-up" and "first during start-up" in shown[1][1]
        assert shown[2][1] == "second during start-up" and "second during start-up" in shown[3][1]
        assert app.conversation_id is not None
        stored = await _stored(app, app.conversation_id)
        assert [content for role, content in stored if role == "user"] == [shown[0][1], shown[2][1]]


@pytest.mark.parametrize("how", ["ctrl+n", "open another"])
async def test_switching_away_from_a_streaming_reply_leaves_no_task_behind(
    data_dir: Path, redis_url: str, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    # A long reply, slow enough to switch in the middle of it (several chunks sealed by then).
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 300.0}))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await send(pilot, "an earlier conversation")
        await wait_for(lambda: _done(app) and bool(_replies(app)), what="first reply", pause=pilot.pause)
        other = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != other, what="a new conversation", pause=pilot.pause)
        a = app.conversation_id
        assert a is not None and other is not None
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            await send(pilot, "tell me a long story")
            await wait_for(
                lambda: bool(_replies(app)) and len(_replies(app)[-1].chunks) > 2,
                what="a long reply streaming",
                pause=pilot.pause,
            )
            assert app.turn_running
            if how == "ctrl+n":
                await pilot.press("ctrl+n")
            else:
                app.sidebar.post_message(app.sidebar.Selected(other))
            await wait_for(lambda: app.conversation_id != a, what="switched away", pause=pilot.pause)
            gc.collect()  # a task nobody awaits any more is destroyed here, with the warning
            await pilot.pause()
            app.sidebar.post_message(app.sidebar.Selected(a))
            await wait_for(lambda: app.conversation_id == a, what="back to the story", pause=pilot.pause)
            await wait_for(lambda: _done(app), what="the story ends", pause=pilot.pause)
            gc.collect()
            await pilot.pause()
        stored = await _stored(app, a)
        assert [role for role, _ in stored] == ["user", "assistant"]
        replies = _replies(app)
        assert len(replies) == 1 and replies[0].text == stored[1][1] and not replies[0].streaming
        assert replies[0].rendered_text == stored[1][1]  # the reply is whole on screen
        warnings = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
        assert warnings == []  # no "Task was destroyed but it is pending!"


@pytest.mark.parametrize("size", [(80, 24), (140, 40)])
async def test_back_to_a_streaming_reply_shows_the_text_streamed_before_the_return(
    data_dir: Path, redis_url: str, size: tuple[int, int]
) -> None:
    # Fast enough that deltas arrive while the returning conversation's history is redrawn:
    # one of them used to start a new reply holding only the text from then on (the story's
    # start, streamed before the switch, was missing until the reply ended).
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 150.0}))
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await send(pilot, "an earlier conversation")
        await wait_for(lambda: _done(app) and bool(_replies(app)), what="first reply", pause=pilot.pause)
        other = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != other, what="a new conversation", pause=pilot.pause)
        a = app.conversation_id
        await send(pilot, "tell me a long story")
        await wait_for(
            lambda: bool(_replies(app)) and len(_replies(app)[-1].text) > 200, what="the story", pause=pilot.pause
        )
        for back in (1, 2):  # twice: away by Ctrl+N, then by opening the other conversation
            if back == 1:
                await pilot.press("ctrl+n")
            else:
                app.sidebar.post_message(app.sidebar.Selected(other or ""))
            await wait_for(lambda: app.conversation_id != a, what="switched away", pause=pilot.pause)
            assert app.turn_running
            app.sidebar.post_message(app.sidebar.Selected(a or ""))
            await wait_for(
                lambda: app.conversation_id == a and bool(_replies(app)) and _replies(app)[-1].streaming,
                what="the live reply in A",
                pause=pilot.pause,
            )
            shown = [type(w).__name__ for w in app.chat_log.children if isinstance(w, (UserMessage, AssistantMessage))]
            assert shown == ["UserMessage", "AssistantMessage"]  # the question, then one live reply
            live = _replies(app)[-1]
            assert live.text.startswith('[holdfast-demo] A long answer to "tell me a long story"')
        await wait_for(lambda: _done(app), what="the story ends", pause=pilot.pause)
        stored = await _stored(app, a or "")
        assert [role for role, _ in stored] == ["user", "assistant"]
        replies = _replies(app)
        assert len(replies) == 1 and replies[0].rendered_text == stored[1][1]
