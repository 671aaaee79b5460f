"""Block navigation (issue 17, item 1): Alt+Up / Alt+Down highlight the chat's messages, tool and
thinking blocks; keys act on the highlighted one (copy it or one of its code blocks, expand or
collapse, retry from here, hide, details), the same actions are in the command palette, and Esc or
typing goes back to the composer.

Real Redis, the embedded demo LLM server: "what is 12*7?" makes a calculator tool call; "tell me
a long story" a long Markdown reply with several fenced code blocks.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.clipboard import system_copy
from app.screens.details import DetailsScreen
from app.widgets.assistant_message import AssistantMessage
from app.widgets.block_nav import HIGHLIGHT, BlockNav, code_blocks
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from tests.support.app import make_config, palette_pick, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis]


def _notes(app: HoldfastApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def _visible(app: HoldfastApp, block: object) -> bool:
    """Some of ``block`` is inside the chat log's visible window."""
    log_ = app.chat_log
    region = block.virtual_region  # type: ignore[attr-defined]
    top, bottom = log_.scroll_y, log_.scroll_y + log_.scrollable_content_region.height
    return region.y < bottom and region.y + region.height > top


async def _answered(pilot, app: HoldfastApp, text: str, replies: int) -> None:  # type: ignore[no-untyped-def]
    """Send ``text`` and wait until its reply is done and ``replies`` replies are shown."""
    await send(pilot, text)
    await wait_for(
        lambda: len(app.chat_log.query(AssistantMessage)) == replies and not app.turn_running,
        what=f"the reply to {text!r}",
        pause=pilot.pause,
    )


async def _two_turns(pilot, app: HoldfastApp) -> None:  # type: ignore[no-untyped-def]
    await _answered(pilot, app, "what is 12*7?", 1)
    await _answered(pilot, app, "tell me a long story", 2)


@pytest.mark.parametrize("size", [(80, 24), (150, 45)], ids=["80x24", "wide"])
async def test_move_copy_expand_details_hide_and_back(data_dir: Path, redis_url: str, size: tuple[int, int]) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await _two_turns(pilot, app)
        nav = app.block_nav
        story = app.chat_log.query(AssistantMessage).last()
        first_reply = app.chat_log.query(AssistantMessage).first()
        tool = app.chat_log.query(ToolCallBlock).first()

        # Alt+Up: the newest block is highlighted, in view, and the hint line replaces the composer.
        await pilot.press("alt+up")
        await pilot.pause()
        assert nav.current is story and story.has_class(HIGHLIGHT)
        assert nav.display and not app.composer.display and app.focused is nav
        assert "reply" in str(nav.render()) and "c copy" in str(nav.render())
        assert _visible(app, story)

        # c copies the whole reply (OSC 52: the app's clipboard), the notice says how.
        await pilot.press("c")
        await wait_for(lambda: app.clipboard == story.text, what="the reply in the clipboard", pause=pilot.pause)
        assert any("OSC 52" in note for note in _notes(app))
        # A digit copies that code block of the reply (several here: numbered).
        codes = code_blocks(story.text)
        assert len(codes) >= 2
        await pilot.press("2")
        await wait_for(lambda: app.clipboard == codes[1], what="code block 2 in the clipboard", pause=pilot.pause)
        assert codes[1].startswith("def part_4(")
        assert any("code block 2 of" in note for note in _notes(app))

        # Up moves through the blocks, oldest first: the question, then the first reply, the tool.
        await pilot.press("alt+up")
        assert isinstance(nav.current, UserMessage) and nav.current.text == "tell me a long story"
        await pilot.press("up")
        assert nav.current is first_reply and not story.has_class(HIGHLIGHT)
        await pilot.pause()
        assert _visible(app, first_reply)
        await pilot.press("up")
        assert nav.current is tool and tool.collapsed
        await pilot.pause()
        assert _visible(app, tool)
        # Enter expands and collapses a tool block.
        await pilot.press("enter")
        await wait_for(lambda: not tool.collapsed, what="the tool block expanded", pause=pilot.pause)
        await pilot.press("enter")
        await wait_for(lambda: tool.collapsed, what="the tool block collapsed", pause=pilot.pause)
        # c on a tool block copies its call and result.
        await pilot.press("c")
        await wait_for(lambda: "calculator" in app.clipboard and "84" in app.clipboard, pause=pilot.pause)

        # i: the details modal.
        await pilot.press("i")
        await wait_for(lambda: isinstance(app.screen, DetailsScreen), what="the details modal", pause=pilot.pause)
        assert isinstance(app.screen, DetailsScreen)
        details = app.screen.text
        assert "calculator" in details and "status  ok" in details
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, DetailsScreen), pause=pilot.pause)

        # Details of a reply come from the store: its id, tokens and source.
        await pilot.press("end")
        assert nav.current is story
        await pilot.press("i")
        await wait_for(lambda: isinstance(app.screen, DetailsScreen), what="the reply's details", pause=pilot.pause)
        assert isinstance(app.screen, DetailsScreen)
        details = app.screen.text
        assert story.message_id is not None and story.message_id in details
        assert "(counted)" in details and "source  llm" in details and "model  holdfast-demo" in details
        assert " in · " in details and " out" in details  # its figures line (issue 17 item 4)
        await pilot.press("escape")
        await wait_for(lambda: app.focused is nav, pause=pilot.pause)

        # d hides the highlighted block (not deleted: reopening shows it) and the highlight moves up.
        await pilot.press("d")
        await wait_for(lambda: not story.display, what="the reply hidden", pause=pilot.pause)
        assert isinstance(nav.current, UserMessage) and story not in nav.blocks()
        assert app.conversation_id is not None and app.rt is not None
        stored = await app.rt.read_messages(app.conversation_id, 20)
        assert story.message_id in [m.id for m in stored]

        # Typing a letter goes back to the composer, with the letter typed there.
        await pilot.press("x")
        await wait_for(lambda: app.focused is app.composer, what="the composer", pause=pilot.pause)
        assert app.composer.display and not nav.display and app.composer.text == "x"
        assert not app.chat_log.query(f".{HIGHLIGHT}")

        # Alt+Down and Esc: back to the composer, nothing typed.
        app.composer.text = ""
        await pilot.press("alt+down")
        assert nav.display and isinstance(nav.current, ToolCallBlock | UserMessage | AssistantMessage)
        await pilot.press("escape")
        await wait_for(lambda: app.focused is app.composer and not nav.display, pause=pilot.pause)
        assert app.composer.text == ""


async def test_retry_from_an_earlier_reply_regenerates_it_in_a_branch(data_dir: Path, redis_url: str) -> None:
    """History is append-only: an earlier turn's new answer goes in a branch sharing the history
    up to that turn's question; the original conversation keeps its reply."""
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await _answered(pilot, app, "hello there", 1)
        await _answered(pilot, app, "what is the capital of France", 2)
        parent = app.conversation_id
        assert parent is not None and app.rt is not None
        original = await app.rt.read_messages(parent, 10)
        await pilot.press("alt+up", "up", "up")
        assert nav_reply(app) is app.chat_log.query(AssistantMessage).first()
        await pilot.press("r")
        await wait_for(
            lambda: (
                app.conversation_id != parent
                and not app.turn_running
                and len(app.chat_log.query(AssistantMessage)) == 1
            ),
            what="the regenerated reply in a branch",
            pause=pilot.pause,
        )
        assert any("regenerating in a branch from message #0" in n for n in _notes(app))
        branch = app.conversation_id
        assert branch is not None
        info = await app.rt.get_conversation(branch)
        assert (info.parent_id, info.fork_seq) == (parent, 0)
        stored = await app.rt.read_messages(branch, 10)
        assert [(m.role, m.content) for m in stored[:1]] == [("user", "hello there")]
        assert [m.role for m in stored] == ["user", "assistant"]
        # Its prompt held the question alone (the original answer and the later turn stay behind).
        assert "(1 system, 1 user)" in stored[1].content, stored[1].content
        assert [m.content for m in await app.rt.read_messages(parent, 10)] == [m.content for m in original]


def nav_reply(app: HoldfastApp) -> object:
    return app.block_nav.current


async def test_retry_from_the_latest_reply_and_the_palette(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await _answered(pilot, app, "hello there", 1)
        first = app.chat_log.query(AssistantMessage).first()
        await pilot.press("alt+up", "r")
        await wait_for(
            lambda: len(app.chat_log.query(AssistantMessage)) == 2 and not app.turn_running,
            what="the regenerated reply",
            pause=pilot.pause,
        )
        old, new = app.chat_log.query(AssistantMessage)
        assert old is first and old.variant and not new.variant
        assert app.focused is app.composer  # retry returns to the composer to watch the reply

        # The same actions in the command palette (on the last reply when nothing is highlighted).
        await palette_pick(pilot, "copy last reply", "copy last reply")
        await wait_for(lambda: app.clipboard == new.text, what="the palette's copy", pause=pilot.pause)


def test_system_clipboard_fallback_uses_the_tool_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a display and ``xclip`` on PATH, the text also goes through xclip (a stand-in script
    that writes what it receives to a file), and the tool is named; with none, None."""
    cat = shutil.which("cat")
    assert cat is not None
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DISPLAY", ":0")
    assert system_copy("nothing to copy with") is None
    out = tmp_path / "clip.txt"
    xclip = tmp_path / "xclip"
    xclip.write_text(f"#!/bin/sh\nexec {cat} > {out}\n")
    xclip.chmod(xclip.stat().st_mode | stat.S_IEXEC)
    assert system_copy("héllo\nworld") == "xclip"
    assert out.read_text(encoding="utf-8") == "héllo\nworld"


def test_code_blocks_are_numbered_in_order() -> None:
    text = "intro\n\n```python\nprint(1)\n```\n\nthen\n\n    indented = 2\n\n```\nlast\n```\n"
    assert code_blocks(text) == ["print(1)\n", "indented = 2\n", "last\n"]
    assert code_blocks("no code here") == []
    assert BlockNav.Act.__doc__  # the message is documented (what the app receives)


async def test_edit_a_highlighted_message_branches_before_it(data_dir: Path, redis_url: str) -> None:
    """``e`` on a highlighted message of yours: its text goes into the composer and sending it
    branches the conversation before it (HoldfastApp.edit_message, tests/app/test_branch.py)."""
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await _answered(pilot, app, "hello there", 1)
        await _answered(pilot, app, "what is the capital of France", 2)
        parent = app.conversation_id
        await pilot.press("alt+up", "up")
        assert isinstance(app.block_nav.current, UserMessage)
        assert "e edit" in str(app.block_nav.render())
        # A reply cannot be edited: it says so.
        await pilot.press("down", "e")
        await wait_for(lambda: any("only your own messages" in n for n in _notes(app)), pause=pilot.pause)
        await pilot.press("up", "e")
        await wait_for(lambda: app.composer.text == "what is the capital of France", what="the text", pause=pilot.pause)
        assert app.focused is app.composer and not app.block_nav.display
        await send(pilot, "what is the capital of Spain")
        await wait_for(
            lambda: (
                app.conversation_id != parent
                and not app.turn_running
                and len(app.chat_log.query(AssistantMessage)) == 2
            ),
            what="the branch",
            pause=pilot.pause,
        )
        assert app.rt is not None and app.conversation_id is not None
        info = await app.rt.get_conversation(app.conversation_id)
        assert info.parent_id == parent
        assert [u.text for u in app.chat_log.query(UserMessage)] == ["hello there", "what is the capital of Spain"]
