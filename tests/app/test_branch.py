"""Edit and branch in the TUI (issue 17): ``/edit`` puts an earlier user message in the composer;
sending it creates a branch sharing the history before it (a parent pointer, not a copy), stores
the edited message there, runs a new reply and opens the branch; the sidebar lists the branch under
its parent with the branch point marked.

Real Redis, the embedded demo LLM server (whose replies count the messages it was sent: that is
how the tests see which history the branch's prompt held)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Region
from textual.widgets import OptionList

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.user_message import UserMessage
from runtime.host.facade import Conversation
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]


def _replies(app: HoldfastApp) -> list[AssistantMessage]:
    return list(app.chat_log.query(AssistantMessage))


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


def _sidebar_lines(app: HoldfastApp) -> list[str]:
    options = app.sidebar.query_one("#conv-options", OptionList)
    width, height = options.outer_size
    return [s.text.strip() for s in options.render_lines(Region(0, 0, width, height)) if s.text.strip()]


async def _turn(pilot: Any, app: HoldfastApp, text: str) -> None:
    before = len(_replies(app))
    await send(pilot, text)
    await wait_for(
        lambda: len(_replies(app)) > before and not app.turn_running, what=f"the reply to {text!r}", pause=pilot.pause
    )


async def test_edit_branches_before_the_message_and_runs_a_new_reply_there(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)
        await _turn(pilot, app, "hello there")
        await _turn(pilot, app, "what is the capital of France")
        parent = app.conversation_id
        assert parent is not None and app.rt is not None
        original = await app.rt.read_messages(parent, 10)
        assert [m.role for m in original] == ["user", "assistant", "user", "assistant"]

        await send(pilot, "/edit")
        await wait_for(lambda: app.composer.text == "what is the capital of France", pause=pilot.pause)
        assert any("editing message #2" in t for t in _notices(app))

        await send(pilot, "what is the capital of Spain")
        await wait_for(
            lambda: app.conversation_id != parent and len(_replies(app)) == 2 and not app.turn_running,
            what="the branch's reply",
            pause=pilot.pause,
        )
        branch = app.conversation_id
        assert branch is not None and branch.startswith(parent + "~")
        info = await app.rt.get_conversation(branch)
        assert (info.parent_id, info.fork_seq) == (parent, 1)

        stored = await app.rt.read_messages(branch, 10)
        assert [(m.seq, m.role, m.content) for m in stored[:3]] == [
            (0, "user", "hello there"),
            (1, "assistant", original[1].content),
            (2, "user", "what is the capital of Spain"),
        ]
        assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
        # The new reply's prompt held the shared prefix and the edited message, not the original.
        assert "(1 system, 2 user, 1 assistant)" in stored[3].content, stored[3].content
        # The parent is as it was.
        assert [m.content for m in await app.rt.read_messages(parent, 10)] == [m.content for m in original]

        # On screen: the branch's whole history, and the sidebar lists it under its parent.
        assert [u.text for u in app.chat_log.query(UserMessage)] == ["hello there", "what is the capital of Spain"]
        await wait_for(lambda: app.sidebar.titles() == [parent, branch], what="the sidebar", pause=pilot.pause)
        lines = _sidebar_lines(app)
        assert lines[1] == "⑂ at #1 · 4 messages", lines
        assert lines[3].startswith("↳ branch at #1"), lines
        # The chat log marks where the branch leaves its parent: after the shared reply.
        order = [type(w).__name__ for w in app.chat_log.children]
        marks = [n for n in app.chat_log.query(Notice) if "branch point" in n.text]
        assert len(marks) == 1 and "(to #1) are shared with “hello there”" in marks[0].text
        at = list(app.chat_log.children).index(marks[0])
        assert [type(w).__name__ for w in list(app.chat_log.children)[at - 1 : at + 2]] == [
            "AssistantMessage",
            "Notice",
            "UserMessage",
        ], order


@pytest.mark.parametrize("size", [(80, 24), (140, 40)])
async def test_an_edited_message_comes_back_with_the_cursor_at_its_end(
    data_dir: Path, redis_url: str, size: tuple[int, int]
) -> None:
    # What a person types after /edit (or e on a highlighted message) goes on the end of the
    # message; it used to land before its first character.
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await _turn(pilot, app, "hello there")
        await send(pilot, "/edit 0")
        await wait_for(lambda: app.composer.text == "hello there", pause=pilot.pause)
        await pilot.press("exclamation_mark")
        assert app.composer.text == "hello there!"
        await send(pilot, "/edit cancel")
        await wait_for(lambda: any("edit dropped" in t for t in _notices(app)), pause=pilot.pause)

        await pilot.press("alt+up", "up")  # the reply, then the message before it
        assert isinstance(app.block_nav.current, UserMessage)
        await pilot.press("e")
        await wait_for(lambda: app.composer.text == "hello there", pause=pilot.pause)
        await pilot.press("question_mark")
        assert app.composer.text == "hello there?"
        # Editing the first message: a branch that shares nothing, said in words, not "#-1".
        assert any("a new branch sharing nothing before it" in t for t in _notices(app))
        parent = app.conversation_id
        await pilot.press("enter")
        await wait_for(
            lambda: app.conversation_id != parent and len(_replies(app)) == 1 and not app.turn_running,
            what="the branch's reply",
            pause=pilot.pause,
        )
        marks = [n.text for n in app.chat_log.query(Notice) if "branch point" in n.text]
        assert marks == ["↳ branch point: this branch shares no messages with “hello there”; it starts here"]
        if size[0] < 120:  # the sidebar is an overlay there
            await pilot.press("ctrl+b")
        await wait_for(lambda: len(app.sidebar.titles()) == 2, what="the sidebar", pause=pilot.pause)
        await wait_for(lambda: len(_sidebar_lines(app)) >= 4, what="the sidebar", pause=pilot.pause)
        lines = _sidebar_lines(app)
        assert lines[1].startswith("⑂ at start ·") and lines[3].startswith("↳ branch at start"), lines
        assert not any("#-1" in line for line in lines), lines


async def test_edit_refuses_what_it_cannot_edit_in_one_line(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await send(pilot, "/edit")
        await wait_for(lambda: any("nothing to edit" in t for t in _notices(app)), pause=pilot.pause)
        await _turn(pilot, app, "hello there")
        assert not await app.edit_message(1)
        assert any("message #1 is the model's: only your own messages can be edited" in t for t in _notices(app))
        await send(pilot, "/edit 9")
        await wait_for(lambda: any("there is no message #9" in t for t in _notices(app)), pause=pilot.pause)
        await send(pilot, "/edit x")
        await wait_for(lambda: any("usage: /edit [SEQ|cancel]" in t for t in _notices(app)), pause=pilot.pause)
        # By message id (what a highlighted block passes), then dropped: the next send appends.
        assert app.rt is not None and app.conversation_id is not None
        first = (await app.rt.read_messages(app.conversation_id, 10))[0]
        assert await app.edit_message(first.id) and app.composer.text == "hello there"
        await send(pilot, "/edit cancel")
        await wait_for(lambda: any("edit dropped" in t for t in _notices(app)), pause=pilot.pause)
        conv = app.conversation_id
        await _turn(pilot, app, "and again")
        assert app.conversation_id == conv
        assert [m.content for m in await app.rt.read_messages(conv, 10)][2] == "and again"


def test_sidebar_with_a_branch(snap_compare: Any, data_dir: Path) -> None:
    """The sidebar lists a branch under its parent, the branch point marked in both rows."""
    app = HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0"), boot=False)

    async def before(pilot: Any) -> None:
        app.composer.cursor_blink = False
        if not app.sidebar.display:
            await pilot.press("ctrl+b")
        app.sidebar.show(
            [
                Conversation("conv_a", "Trip to Lisbon", 0.0, 3.0, message_count=24),
                Conversation("conv_a~0a1b2c", "Trip to Lisbon", 5.0, 9.0, 16, parent_id="conv_a", fork_seq=12),
                Conversation("conv_b", "Quarterly report", 0.0, 1.0, message_count=6),
            ],
            "conv_a~0a1b2c",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 24), run_before=before)
