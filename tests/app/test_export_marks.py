"""Export and show mark what happened (issue 16, case 8): ``/export md`` after Esc inside a code
block closes the fence and marks the reply interrupted; a fallback notice (LLM down) is marked in
Markdown, JSON and ``holdfast conversations show`` (the real console script); cut-off and cached
replies are marked from their stored metadata.

Real Redis, the embedded demo LLM server (slowed down so Esc lands inside a code block).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from runtime.core.messages import ChatMessage
from runtime.state.export import close_fences, mark_line, marks
from tests.support.app import make_config, ready, send
from tests.support.cli import run_script
from tests.support.polling import wait_for

SIZE = (140, 40)
FENCE = "```"


def _inside_code_block(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith(FENCE)) % 2 == 1


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


def _fences_balanced(markdown: str) -> bool:
    return sum(1 for line in markdown.splitlines() if line.lstrip().startswith(FENCE)) % 2 == 0


@pytest.mark.ui
@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.slow
async def test_export_after_esc_in_a_code_block_closes_the_fence_and_marks_the_reply(
    data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"llm.demo_tokens_per_second": 60.0}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a long story")

        def streaming_code() -> bool:
            replies = list(app.chat_log.query(AssistantMessage))
            return bool(replies) and _inside_code_block(replies[-1].text)

        await wait_for(streaming_code, what="the reply to be inside a code block", pause=pilot.pause)
        await pilot.press("escape")
        await wait_for(lambda: not app.turn_running, what="the cancel", pause=pilot.pause)
        assert app.rt is not None and app.conversation_id is not None
        stored = await app.rt.read_messages(app.conversation_id, 10)
        assert _inside_code_block(stored[-1].content)  # the partial reply stops inside its code block
        await send(pilot, "/export md")
        await wait_for(lambda: any("exported" in t for t in _notices(app)), what="/export md", pause=pilot.pause)
        exported = (data_dir / "exports" / f"{app.conversation_id}.md").read_text(encoding="utf-8")
        assert _fences_balanced(exported), exported[-400:]
        assert "interrupted: stopped before the end; stopped by the user" in exported
        # The reply's text ends the document: the closing fence is its last line.
        assert exported.rstrip().endswith(FENCE)

        await send(pilot, "/export json")
        await wait_for(
            lambda: (data_dir / "exports" / f"{app.conversation_id}.json").exists(), what="json", pause=pilot.pause
        )
        document = json.loads((data_dir / "exports" / f"{app.conversation_id}.json").read_text(encoding="utf-8"))
        assert [m["marks"] for m in document["messages"]] == [[], ["interrupted"]]


@pytest.mark.ui
@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.slow
async def test_a_fallback_notice_is_marked_in_export_json_and_the_cli_show(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "/chaos kill llm")
        await wait_for(lambda: any("killed llm" in t for t in _notices(app)), what="the kill", pause=pilot.pause)
        await send(pilot, "are you there?")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(AssistantMessage)),
            what="the fallback reply",
            pause=pilot.pause,
        )
        conversation_id = app.conversation_id
        assert conversation_id is not None and app.rt is not None
        document = json.loads(await app.rt.export_conversation(conversation_id, "json"))
        assert [m["marks"] for m in document["messages"]] == [[], ["fallback"]]
        markdown = await app.rt.export_conversation(conversation_id, "md")
        assert "fallback notice: the LLM was unavailable" in markdown

    shown = run_script(
        "--redis-url",
        redis_url,
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--user",
        "tester",
        "conversations",
        "show",
        conversation_id,
        env={"HOLDFAST_DATA_DIR": str(data_dir), "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical"},
    )
    assert shown.code == 0, shown.err
    assert "⚠ fallback notice: the LLM was unavailable (hidden from later prompts)" in shown.out


def _reply(content: str, **metadata: object) -> ChatMessage:
    return ChatMessage(role="assistant", content=content, metadata=dict(metadata))


def test_cut_off_cached_and_variant_replies_are_marked() -> None:
    cut = _reply("half an answer", finish_reason="length", cut_off=True)
    cached = _reply("an old answer", source="cache", stale=True)
    variant = _reply("a partial", interrupted=True, stop_reason="cancelled")
    plain = _reply("a whole answer", source="llm", finish_reason="stop")
    assert [marks(m) for m in (cut, cached, plain)] + [marks(variant, variant=True)] == [
        ["cut_off"],
        ["cached"],
        [],
        ["interrupted", "variant"],
    ]
    assert mark_line(cut) == "> **⚠ cut off at a length limit (the output limit or a full context window)**"
    assert mark_line(plain) == ""
    assert "earlier variant, replaced by /retry" in mark_line(variant, variant=True)


def test_close_fences_closes_only_an_open_fence() -> None:
    assert close_fences("intro\n```python\nx = 1") == "intro\n```python\nx = 1\n```"
    assert close_fences("````\nnested ```\n") == "````\nnested ```\n````"
    assert close_fences("~~~\ncode\n") == "~~~\ncode\n~~~"
    balanced = "```\na\n```\ntext with ``` inline"
    assert close_fences(balanced) == balanced
