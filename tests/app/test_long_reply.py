"""A long Markdown reply: the demo model's long-answer mode, and the app streaming it whole.

The reply comes from the embedded demo LLM server over real HTTP, is saved in the real Redis,
and is drawn by Textual's Markdown widget: headings, lists and code blocks all on screen, and
the rendered source equal to what was streamed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets._markdown import MarkdownBlock, MarkdownFence, MarkdownHeader

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from runtime.demo import model as demo_model
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis]


def _ask(text: str) -> demo_model.DemoReply:
    return demo_model.respond([{"role": "user", "content": text}])


@pytest.mark.parametrize("text", ["tell me a long story", "Give me a long answer please", "explain breakers at length"])
def test_a_request_for_a_long_answer_gets_about_2000_tokens_of_markdown(text: str) -> None:
    reply = _ask(text)
    words = len(demo_model.split_words(reply.text or ""))
    assert demo_model.LONG_REPLY_WORDS <= words < demo_model.LONG_REPLY_WORDS + 200
    body = reply.text or ""
    assert body.startswith(demo_model.LABEL)
    assert "\n# " in body and "\n## " in body and "\n- " in body and "\n1. " in body
    assert body.count("```") >= 10 and body.count("```") % 2 == 0  # every code block is closed
    assert _ask(text).text == body  # deterministic


def test_long_only_as_a_request_not_as_any_word() -> None:
    reply = _ask("how long is the queue?")
    assert reply.text is not None and len(demo_model.split_words(reply.text)) < 100


@pytest.mark.slow
async def test_a_long_reply_streams_whole_into_the_chat_log(data_dir: Path, redis_url: str) -> None:
    # The demo server honours max_tokens like a real one: give the ~2,000-token story room to finish.
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.max_output_tokens": 4096}))
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a long story")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(AssistantMessage)),
            what="the long reply",
            pause=pilot.pause,
        )
        reply = app.chat_log.query(AssistantMessage).last()
        expected = _ask("tell me a long story").text
        assert reply.text == expected
        assert reply.rendered_text == reply.text  # nothing left behind in a stream buffer
        assert len(reply.chunks) > 1  # sealed while streaming; the far ones may be folded
        blocks = list(reply.query(MarkdownBlock))
        assert sum(isinstance(b, MarkdownFence) for b in blocks) == expected.count("```python")
        headings = [b for b in blocks if isinstance(b, MarkdownHeader)]
        assert len(headings) == expected.count("\n## ") + 1
        assert not reply.streaming and not reply.query_one(".badge").display
        stored = await app.rt.read_messages(app.conversation_id, 10)
        assert stored[-1].content == expected
