"""The chat as a daily driver, as a new user met it in tmux (issue 16's break test): a resize
re-lays the screen for the new width, keys typed at launch reach the composer, picking a
conversation in the sidebar goes back to the chat, a command's answer is shown even when the
chat was scrolled up, the welcome card and the footer fit an 80x24 terminal, a search hit in a
long reply opens at that reply, and the sidebar's counts stay right while Redis is down.

Unbooted apps for the layout (no backends needed to lay out a screen); real Redis, the embedded
demo LLM server and a real pty (``python -m app``) for the rest.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios
from pathlib import Path

import pytest
from textual.widgets import Footer, OptionList

from app.chat_app import HoldfastApp
from app.layout import MIN_CHAT
from app.main import typed_ahead
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.welcome import Welcome
from tests.app.test_hangup import Terminal, terminal, terminal_env  # noqa: F401 (fixtures)
from tests.support.app import make_config, ready, send
from tests.support.cli import run_script
from tests.support.polling import wait_for, wait_until

pytestmark = pytest.mark.ui


def _unbooted(data_dir: Path) -> HoldfastApp:
    return HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0"), boot=False)


def _footer_text(app: HoldfastApp) -> str:
    strips = app.screen._compositor.render_strips()
    footer = app.screen.query_one(Footer)
    return "".join(segment.text for segment in strips[footer.region.y])


async def _say(pilot, app: HoldfastApp, text: str) -> None:  # type: ignore[no-untyped-def]
    """Send ``text`` and wait for the demo's reply quoting it."""
    await send(pilot, text)
    await wait_for(
        lambda: not app.turn_running and any(text in r.text for r in app.chat_log.query(AssistantMessage)),
        what=f"the reply to {text!r}",
        pause=pilot.pause,
    )


# ------------------------------------------------------------------ layout (no backends)


@pytest.mark.parametrize(("first", "then"), [((80, 24), (120, 40)), ((120, 40), (80, 24)), ((160, 50), (64, 24))])
async def test_a_resize_lays_the_screen_out_for_the_new_width(
    data_dir: Path, first: tuple[int, int], then: tuple[int, int]
) -> None:
    # Textual calls the app's resize handler before it stores the new size: the layout used to
    # follow one resize behind (back at 80 columns the chat was 20 wide, panels beside it).
    app = _unbooted(data_dir)
    async with app.run_test(size=first) as pilot:
        await pilot.pause()
        await pilot.resize_terminal(*then)
        await pilot.pause()
        await pilot.pause()
        width = then[0]
        main = app.query_one("#main")
        assert main.size.width >= min(MIN_CHAT, width), f"chat is {main.size.width} columns at {width}"
        assert app.panels.display is (width >= 110)
        assert app.status_bar.display is (width < 110)
        assert app.sidebar.display is (width >= 120 or 84 <= width < 110)


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (160, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_welcome_card_is_whole_on_the_first_screen(data_dir: Path, size: tuple[int, int]) -> None:
    # At 80x24 the card was 23 rows in a 17-row chat and opened scrolled to its end: its title,
    # what Holdfast is and the model were out of view.
    app = _unbooted(data_dir)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.pause()
        log = app.chat_log
        card = log.query_one(Welcome)
        assert log.max_scroll_y == 0, f"the card needs {log.max_scroll_y} more rows at {size}"
        assert card.compact is (size[1] < 40)
        assert card.region.y >= log.region.y  # its first row (the title) is on screen


async def test_the_welcome_card_changes_form_with_the_terminal_height(data_dir: Path) -> None:
    app = _unbooted(data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        card = app.chat_log.query_one(Welcome)
        assert not card.compact
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        assert card.compact and app.chat_log.max_scroll_y == 0


@pytest.mark.parametrize("width", [80, 100, 120])
async def test_every_footer_key_fits(data_dir: Path, width: int) -> None:
    # At 80 columns the footer read "^f Se▏^p palette".
    app = _unbooted(data_dir)
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        await pilot.pause()
        line = _footer_text(app)
        for key in (
            "^q Quit",
            "^n New",
            "f2 Rename",
            "f8 Delete",
            "^b Sidebar",
            "^r Panels",
            "^f Search",
            "^p palette",
        ):
            assert key in line, f"{key!r} missing from the footer at {width}: {line!r}"


# ------------------------------------------------------------------ the sidebar and the composer


async def test_picking_a_conversation_goes_back_to_the_chat(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await _say(pilot, app, "the first conversation")
        first = app.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != first, what="a new conversation", pause=pilot.pause)
        await _say(pilot, app, "the second conversation")
        second = app.conversation_id
        await wait_for(lambda: len(app.sidebar.conversations) == 2, what="both listed", pause=pilot.pause)

        # 80 columns: Ctrl+B opens the sidebar over the chat, ready for Up/Down and Enter.
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.sidebar.display and app.sidebar.has_class("-overlay")
        assert isinstance(app.focused, OptionList)
        await pilot.press("down", "enter")
        await wait_for(lambda: app.conversation_id == first, what="the older one opened", pause=pilot.pause)
        assert not app.sidebar.display  # the overlay closed: the chat is visible again
        assert app.focused is app.composer
        await pilot.press("h", "i")
        assert app.composer.text == "hi"  # typed into the composer, not into the list
        app.composer.text = ""

        # Esc closes what was opened over the chat (nothing is streaming).
        await pilot.press("ctrl+b")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not app.sidebar.display and app.focused is app.composer
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.panels.display and app.panels.has_class("-overlay")
        await pilot.press("escape")
        await pilot.pause()
        assert not app.panels.display and app.status_bar.display

        # Hiding the sidebar while it has the focus gives the focus back to the composer.
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert isinstance(app.focused, OptionList)
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not app.sidebar.display and app.focused is app.composer

        # 120 columns: the sidebar is inline; a click on a row opens it and the composer keeps
        # what is typed next.
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        await pilot.pause()
        assert app.sidebar.display and not app.sidebar.has_class("-overlay")
        options = app.sidebar.options
        row = app.sidebar.titles().index(second)
        await pilot.click(options, offset=(2, 2 * row))
        await wait_for(lambda: app.conversation_id == second, what="the clicked one opened", pause=pilot.pause)
        assert app.focused is app.composer


async def test_a_command_answer_is_shown_when_the_chat_was_scrolled_up(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await _say(pilot, app, "tell me a long story")
        log = app.chat_log
        await pilot.press("pageup", "pageup")
        await pilot.pause()
        assert log.scroll_y < log.max_scroll_y
        for command, needle in (("/tools", "calculator"), ("/summarize", "summar"), ("/help", "/retry")):
            before = len(log.query(Notice))
            await send(pilot, command)
            await wait_for(lambda: len(log.query(Notice)) > before, what=f"{command}'s answer", pause=pilot.pause)
            await pilot.pause()
            answer = list(log.query(Notice))[-1]
            assert needle in answer.text
            bottom = answer.virtual_region.bottom
            assert log.scroll_y + log.size.height >= bottom - 1, f"{command}'s answer is below the view"
            await pilot.press("pageup")
            await pilot.pause()


async def test_a_search_hit_in_a_long_reply_opens_at_that_reply(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await _say(pilot, app, "tell me a long story")
        story = app.conversation_id
        for n in range(3):
            await _say(pilot, app, f"filler message {n}")
        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != story, what="a new conversation", pause=pilot.pause)
        await _say(pilot, app, "something else entirely")
        await pilot.press("ctrl+f")
        app.query_one("#conv-search").value = "bulkheads"  # type: ignore[attr-defined]
        await wait_for(lambda: app.sidebar.hits_query == "bulkheads", what="the search", pause=pilot.pause)
        await pilot.press("enter")
        await wait_for(lambda: app.conversation_id == story, what="the story opened", pause=pilot.pause)
        log = app.chat_log
        await wait_for(lambda: bool(log.query(".-found")), what="the reply highlighted", pause=pilot.pause)
        for _ in range(5):
            await pilot.pause()
        found = log.query(".-found").first()
        assert isinstance(found, AssistantMessage) and "bulkheads" in found.text
        top = found.virtual_region.y
        assert log.scroll_y <= top + 1 < log.scroll_y + log.size.height, (
            f"the reply starts at row {top}, the view shows {log.scroll_y}..{log.scroll_y + log.size.height}"
        )


# ------------------------------------------------------------------ Redis down


@pytest.mark.e2e
@pytest.mark.slow
async def test_the_sidebar_counts_stay_right_while_redis_is_down(data_dir: Path) -> None:
    # The list read while Redis is out comes from the local cache, which kept the count the
    # conversation had when it was opened: 19 messages became 9 until Redis came back.
    app = HoldfastApp(make_config(data_dir))  # the app's own embedded redis-server
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await _say(pilot, app, "one")
        await _say(pilot, app, "two")
        conversation = app.conversation_id
        assert conversation is not None

        def count() -> int:
            return next(c.message_count for c in app.sidebar.conversations if c.id == conversation)

        await wait_for(lambda: count() == 4, what="4 messages listed", pause=pilot.pause)
        await send(pilot, "/chaos kill redis")
        await wait_for(lambda: _down(app), timeout=5, what="redis down", pause=pilot.pause)
        await _say(pilot, app, "three, written while redis is down")
        await app.reload_sidebar()
        assert count() == 6
        await send(pilot, "/chaos start redis")
        await wait_for(
            lambda: app.rt is not None and not app.rt.store_status().degraded, what="replayed", pause=pilot.pause
        )
        await app.reload_sidebar()
        assert count() == 6


def _down(app: HoldfastApp) -> bool:
    return app.health_panel.status_of("redis") == "unhealthy"


# ------------------------------------------------------------------ a real terminal


@pytest.mark.e2e
@pytest.mark.slow
def test_a_message_typed_at_launch_is_sent(terminal: Terminal, terminal_env: dict[str, str]) -> None:  # noqa: F811
    # Typed before the first frame: Textual's auto focus had given the keys to the sidebar's
    # search box (the first focusable widget) until the app focused the composer.
    terminal.type("typed at launch\r")
    terminal.wait_output("I received", 60.0)  # the demo model's answer
    terminal.type("\x11")
    terminal.wait_exit(5.0)
    listed = run_script("conversations", "list", env=terminal_env)
    assert listed.code == 0, listed.err
    conversations = listed.json_lines()
    assert len(conversations) == 1, conversations
    shown = run_script("conversations", "show", str(conversations[0]["id"]), env=terminal_env)
    user_turn = shown.out.split("### User", 1)[1]
    assert user_turn.split("###", 1)[0].strip().endswith("typed at launch")  # sent, as typed


def test_typed_ahead_reads_whole_lines_and_leaves_the_rest() -> None:
    # A terminal in line mode, as it is before Textual takes it: Enter arrives as a line feed.
    master, slave = pty.openpty()
    try:
        os.write(master, b"hello there\r/help\r\x1b[Aup arrow\r\r  \rstill typing")
        wait_until(lambda: _waiting(slave) > 0, 5.0, "the typed bytes to reach the terminal")
        assert typed_ahead(slave) == ["hello there", "/help", "up arrow"]
        os.set_blocking(slave, False)
        assert _waiting(slave) == 0  # the unfinished line is not readable in line mode
        assert typed_ahead(slave) == []
    finally:
        os.close(master)
        os.close(slave)
    assert typed_ahead(-1) == []


def _waiting(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
