"""The responsive layout (issue 16, case 1): the chat keeps 60 columns, narrow terminals get the
status bar, the panels open on a key or a click, and the user's choice survives a restart.

The app runs unbooted (no backends needed to lay out a screen): what is asserted is widths and
what is on screen, measured on the real widgets after Textual laid them out.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from app.chat_app import HoldfastApp
from app.layout import MIN_CHAT
from app.widgets.assistant_message import AssistantMessage
from app.widgets.user_message import UserMessage
from app.widgets.welcome import Welcome
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = pytest.mark.ui


def _app(data_dir: Path) -> HoldfastApp:
    return HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0"), boot=False)


@pytest.mark.parametrize("width", [64, 80, 100, 109, 110, 120, 140, 160, 200])
async def test_the_chat_column_keeps_60_columns(data_dir: Path, width: int) -> None:
    app = _app(data_dir)
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        main = app.query_one("#main")
        assert main.size.width >= MIN_CHAT, f"chat is {main.size.width} columns at {width}"
        # Below 110 columns the panels are a status bar; from 110 they sit beside the chat.
        assert app.status_bar.display is (width < 110)
        assert app.panels.display is (width >= 110)


async def test_status_bar_click_opens_the_panels_over_the_chat_and_keeps_its_width(data_dir: Path) -> None:
    app = _app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        width = app.query_one("#main").size.width
        await pilot.click("#statusbar")
        await pilot.pause()
        assert app.panels.display and app.panels.has_class("-overlay")
        assert app.query_one("#main").size.width == width
        assert app.breakers_panel.region.width > 0
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.panels.display


async def test_status_bar_shows_breaker_and_health_dots_and_the_budget(data_dir: Path) -> None:
    app = _app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        app.health_panel.set_row("redis", status="unhealthy", detail="down")
        app.health_panel.set_row("llm", status="healthy", detail="ok")
        await pilot.pause()
        line = app.status_bar.line(200).plain
        assert "health ●redis ●llm" in line
        assert "budget –" in line
        red = [span for span in app.status_bar.line(200).spans if span.style == "bold red"]
        assert len(red) == 1  # the redis dot


async def test_the_layout_choice_is_remembered_across_launches(data_dir: Path) -> None:
    app = _app(data_dir)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert app.sidebar.display and app.panels.display
        await pilot.press("ctrl+b")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.sidebar.display and not app.panels.display
        assert app.status_bar.display  # hidden panels still leave their dots on screen
    again = _app(data_dir)
    async with again.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert not again.sidebar.display and not again.panels.display
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert again.panels.display and not again.panels.has_class("-overlay")
    third = _app(data_dir)
    async with third.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert third.panels.display and not third.sidebar.display


async def test_an_empty_conversation_shows_the_welcome_card(data_dir: Path) -> None:
    app = _app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        card = app.chat_log.query_one(Welcome)
        console = Console(width=76, record=True, file=io.StringIO())
        console.print(card.body())
        shown = console.export_text()
        for expected in ("Holdfast", "/help", "/chaos kill llm", "Ctrl+N", "holdfast-demo"):
            assert expected in shown
        placeholder = app.composer.placeholder
        assert len(str(placeholder)) <= app.composer.content_size.width  # not cut off


async def test_sidebar_titles_take_one_line_cut_with_an_ellipsis(data_dir: Path) -> None:
    """Issue 16 break-test: a long title wrapped onto two lines of the sidebar (it was cut at 40
    characters, wider than the ~26 columns a row has). Now a title is one line, cut to the width."""
    from textual.geometry import Region
    from textual.widgets import OptionList

    from runtime.host.facade import Conversation

    app = _app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.sidebar.display
        long = "Planning the quarterly offsite in Lisbon with the whole team"
        app.sidebar.show(
            [
                Conversation("c1", long, 0.0, 2.0, message_count=3),
                Conversation("c2", "Short one", 0.0, 1.0, message_count=1),
            ]
        )
        await pilot.pause()
        options = app.sidebar.query_one("#conv-options", OptionList)
        width, height = options.outer_size
        lines = [strip.text.rstrip() for strip in options.render_lines(Region(0, 0, width, height))]
        text = [line.strip() for line in lines if line.strip()]
        assert text[:4] == [text[0], "3 messages", "Short one", "1 message"], lines
        assert text[0].endswith("…") and long.startswith(text[0][:-1]), text[0]
        assert len(text[0]) >= width - 4  # cut to the width available, not at a fixed 40 characters


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_a_reply_uses_the_chat_width_up_to_one_column(
    data_dir: Path, redis_url: str, size: tuple[int, int]
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a long story")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(AssistantMessage)), what="reply", pause=pilot.pause
        )
        await pilot.pause()
        log_ = app.chat_log
        reply = log_.query_one(AssistantMessage)
        user = log_.query_one(UserMessage)
        right = log_.scrollable_content_region.right
        assert right - reply.region.right == 1  # one column to the right of a reply, not 8
        assert reply.region.x == log_.scrollable_content_region.x
        assert user.region.x - log_.scrollable_content_region.x == 8  # the user's bubble keeps its offset
