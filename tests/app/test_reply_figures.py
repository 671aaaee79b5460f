"""The figures under each reply (issue 17, item 4) in the TUI at 80x24: one short line with the
tokens the demo server reported, the times, and the cost by the ``[pricing]`` table; the same
line when the conversation is reopened from the store; the sidebar shows the conversation's
total. Real Redis and the embedded demo LLM server."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.reply_figures import ReplyFiguresLine
from runtime.core.figures import ReplyFigures, figures_line, format_cost
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (80, 24)
PRICES = {"holdfast-*": {"input": 2.0, "output": 8.0}}


def _lines(app: HoldfastApp) -> list[ReplyFiguresLine]:
    return list(app.chat_log.query(ReplyFiguresLine))


async def test_a_reply_shows_its_figures_on_one_line_that_fits_80_columns(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"pricing.models": PRICES}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.rt is not None
        await send(pilot, "hello there")
        await wait_for(
            lambda: bool(_lines(app)) and not app.turn_running, what="the reply's figures", pause=pilot.pause
        )
        conv = app.conversation_id
        assert conv is not None

        stored = [m for m in await app.rt.read_messages(conv, 10) if m.role == "assistant"]
        figures = ReplyFigures.of_message(stored[-1].metadata)
        assert figures is not None and not figures.estimated  # the demo server reports usage
        assert figures.cost == pytest.approx((figures.prompt_tokens * 2.0 + figures.completion_tokens * 8.0) / 1e6)

        (line,) = _lines(app)
        assert line.text == figures_line(figures)
        assert line.text.startswith(f"{figures.prompt_tokens} in · {figures.completion_tokens} out · first ")
        assert line.text.endswith(format_cost(figures.cost or 0.0))
        # One row, inside the reply, and the whole text shown (no ellipsis) at 80 columns.
        reply = app.chat_log.query(AssistantMessage).last()
        assert line.parent is reply and line.region.height == 1
        assert line.region.right <= SIZE[0] and len(line.text) <= line.content_region.width
        assert line.text in "".join(strip.text for strip in line.render_lines(line.region.reset_offset))

        # The sidebar's row of the conversation shows its total.
        await wait_for(lambda: conv in app.sidebar.totals, what="the conversation's total", pause=pilot.pause)
        assert app.sidebar.totals[conv].cost == pytest.approx(figures.cost)
        option = app.sidebar.options.get_option(conv)
        assert str(option.prompt).endswith(f"2 messages · {format_cost(figures.cost or 0.0)}")

        # Reopened from the store, the reply shows the same line.
        await app.open_conversation(conv)
        await wait_for(lambda: len(_lines(app)) == 1, what="the stored reply's figures", pause=pilot.pause)
        assert _lines(app)[0].text == figures_line(figures)


async def test_a_model_without_a_price_shows_no_cost(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "hello there")
        await wait_for(
            lambda: bool(_lines(app)) and not app.turn_running, what="the reply's figures", pause=pilot.pause
        )
        (line,) = _lines(app)
        assert "$" not in line.text and " out · " in line.text
