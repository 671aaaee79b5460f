"""Retry replaces (issue 16, case 7): ``/retry`` after an interrupted (Esc) or failed (the stream
broke off) reply regenerates the answer to the same user message; the partial reply is kept as an
earlier variant, shown marked, exported marked, and no longer sent to the model as context.

Real Redis, the embedded demo LLM server. Its model answers "tell me a long story" with a
~2,000-word story only when the user's message is the last one in the prompt; with the partial
reply still in the prompt it would answer with a short generic line.
"""

from __future__ import annotations

import json
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
STORY = "tell me a long story"
#: The demo's long story is ~2,000 words; its short generic reply is one line.
LONG = 5000


def _replies(app: HoldfastApp) -> list[AssistantMessage]:
    return list(app.chat_log.query(AssistantMessage))


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


async def _retry_and_check(pilot, app: HoldfastApp, partial: str) -> None:  # type: ignore[no-untyped-def]
    await send(pilot, "/retry")
    await wait_for(
        lambda: len(_replies(app)) == 2 and not app.turn_running, what="the regenerated reply", pause=pilot.pause
    )
    old, new = _replies(app)
    assert old.variant and not new.variant
    assert len(new.text) > LONG, new.text[:200]  # the story again, not a short line about the partial
    assert len(new.text) > len(partial)
    assert new.text.startswith(partial[:80])  # the same (deterministic) answer to the same message
    assert [u.text for u in app.chat_log.query(UserMessage)] == [STORY]

    assert app.rt is not None and app.conversation_id is not None
    stored = await app.rt.read_messages(app.conversation_id, 10)
    assert [m.role for m in stored] == ["user", "assistant", "assistant"]
    assert stored[1].metadata.get("interrupted") is True
    document = json.loads(await app.rt.export_conversation(app.conversation_id, "json"))
    assert [m["marks"] for m in document["messages"]] == [[], ["interrupted", "variant"], []]

    # Reopened from the store, the partial is still shown as the earlier variant.
    await app.open_conversation(app.conversation_id)
    await wait_for(lambda: len(_replies(app)) == 2, what="the history again", pause=pilot.pause)
    assert [r.variant for r in _replies(app)] == [True, False]

    # The next turn's prompt holds the question, the new answer and the next message only.
    await send(pilot, "thanks")
    await wait_for(lambda: len(_replies(app)) == 3 and not app.turn_running, what="the next reply", pause=pilot.pause)
    # The demo counts what reached it: one assistant message (the new answer), not two.
    assert "(1 system, 2 user, 1 assistant)" in _replies(app)[-1].text, _replies(app)[-1].text


async def test_retry_after_esc_regenerates_the_answer_and_keeps_the_partial_as_a_variant(
    data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(
        make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 300.0, "llm.max_output_tokens": 8000})
    )
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, STORY)
        await wait_for(lambda: bool(_replies(app)) and len(_replies(app)[0].text) > 200, pause=pilot.pause)
        await pilot.press("escape")
        await wait_for(lambda: not app.turn_running, what="the cancel", pause=pilot.pause)
        partial = _replies(app)[0].text
        await _retry_and_check(pilot, app, partial)


async def test_retry_after_a_broken_stream_regenerates_the_answer(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.max_output_tokens": 8000}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.rt is not None
        await app.rt.chaos.faults(drop_after_tokens=60)  # the stream breaks off after 60 tokens
        await send(pilot, STORY)
        await wait_for(
            lambda: any("the reply failed" in t for t in _notices(app)) and not app.turn_running,
            what="the broken reply",
            pause=pilot.pause,
        )
        partial = _replies(app)[0].text
        await send(pilot, "/chaos reset")
        await wait_for(lambda: any("chaos reset" in t for t in _notices(app)), what="the reset", pause=pilot.pause)
        # The broken stream may have opened the llm breaker: /retry once it admits a call again
        # (closed by a health probe, or due for its half-open probe), as a person would.
        await wait_for(lambda: _llm_admits(app), what="the llm breaker to admit a call", pause=pilot.pause)
        await _retry_and_check(pilot, app, partial)


def _llm_admits(app: HoldfastApp) -> bool:
    assert app.rt is not None
    snapshot = app.rt.breaker_snapshot("llm")
    if snapshot is None or snapshot.state != "open":
        return True
    return snapshot.seconds_until_half_open is not None and snapshot.seconds_until_half_open <= 0
