"""Small things people notice, part 1 (issue 16, case 13): ``/summarize --force`` below the
threshold; the Context panel shows the conversation on screen (Ctrl+N: a new conversation's
figures; back: the old one's), does not count hidden fallback notices as dropped, and after
``/retry`` shows the retried prompt (without the replaced partial reply).

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


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


async def _say(pilot, app: HoldfastApp, text: str) -> None:  # type: ignore[no-untyped-def]
    await send(pilot, text)

    def answered() -> bool:
        reply = app.chat_log.last_reply()
        return not app.turn_running and reply is not None and text in reply.text  # the demo quotes it

    await wait_for(answered, what=f"the reply to {text!r}", pause=pilot.pause)


async def test_the_context_panel_follows_the_conversation_on_screen(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        panel = app.context_panel
        assert panel.report is None
        await _say(pilot, app, "first question")
        await _say(pilot, app, "second question")
        first = app.conversation_id
        assert panel.report is not None and panel.report.messages_included == 3  # q1, a1, q2

        await pilot.press("ctrl+n")
        await wait_for(lambda: app.conversation_id != first, what="a new conversation", pause=pilot.pause)
        assert panel.report is None and "no prompt built yet" in str(panel.render())
        await _say(pilot, app, "only question")
        assert panel.report is not None and panel.report.messages_included == 1

        assert first is not None
        await app.open_conversation(first)
        assert panel.report is not None and panel.report.messages_included == 3


async def test_hidden_fallback_notices_are_not_counted_as_dropped(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "/chaos kill llm")
        await wait_for(lambda: any("killed llm" in t for t in _notices(app)), what="the kill", pause=pilot.pause)
        await send(pilot, "are you there?")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(AssistantMessage)),
            what="the fallback notice",
            pause=pilot.pause,
        )
        await send(pilot, "/chaos start llm")
        await wait_for(lambda: any("started llm" in t for t in _notices(app)), what="the restart", pause=pilot.pause)
        await wait_for(
            lambda: (s := app.runtime.breaker_snapshot("llm")) is not None and s.state == "closed",
            what="the LLM breaker closed",
            pause=pilot.pause,
        )
        await _say(pilot, app, "back again")
        report = app.context_panel.report
        assert report is not None
        # Sent: the first question, the new one; the hidden fallback notice was never a candidate.
        assert (report.messages_included, report.messages_dropped) == (2, 0)
        assert "dropped" not in str(app.context_panel.render())


async def test_after_retry_the_panel_shows_the_retried_prompt(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 400.0}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a long story")
        await wait_for(
            lambda: (
                bool(app.chat_log.query(AssistantMessage)) and len(app.chat_log.query(AssistantMessage)[0].text) > 200
            ),
            pause=pilot.pause,
        )
        await pilot.press("escape")
        await wait_for(lambda: not app.turn_running, what="the cancel", pause=pilot.pause)
        before = app.context_panel.report
        await send(pilot, "/retry")
        await wait_for(
            lambda: app.context_panel.report is not before, what="the retried prompt's figures", pause=pilot.pause
        )
        report = app.context_panel.report
        assert report is not None
        assert (report.messages_included, report.messages_dropped) == (1, 0)  # the question, not the partial
        await pilot.press("escape")
        await wait_for(lambda: not app.turn_running, what="the second cancel", pause=pilot.pause)


async def test_summarize_force_summarises_below_the_threshold(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for n in range(3):
            await _say(pilot, app, f"question number {n}")
        await send(pilot, "/summarize")
        await wait_for(lambda: any("nothing to do" in t for t in _notices(app)), what="/summarize", pause=pilot.pause)
        await send(pilot, "/summarize --force")
        await wait_for(
            lambda: any(t.startswith("summary: ") for t in _notices(app)),
            what="/summarize --force",
            pause=pilot.pause,
        )
        assert _notices(app)[-1].startswith("summary: summarized"), _notices(app)
        await _say(pilot, app, "after the summary")
        report = app.context_panel.report
        assert report is not None and report.summary_used
        assert report.messages_included < 7  # older turns went into the summary
