"""The TUI with endpoints that think first or cut replies short (the demo server's quirk
profiles, switched with /chaos quirk): a collapsible "thinking" block that collapses when the
answer starts, and a cut-off reply marked, announced and continued with /continue."""

from __future__ import annotations

import pytest

from app.chat_app import HoldfastApp
from app.command_handlers import CONTINUE_MESSAGE
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.thinking_block import ThinkingBlock
from app.widgets.user_message import UserMessage
from runtime.agent.turn import cut_off_note
from runtime.config import LoadedConfig
from tests.support.app import ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _replies(app: HoldfastApp) -> list[AssistantMessage]:
    return list(app.chat_log.query(AssistantMessage))


@pytest.mark.parametrize("size", [(80, 24), SIZE])
async def test_thinking_shows_while_the_model_thinks_and_collapses_when_it_answers(
    app_config: LoadedConfig, size: tuple[int, int]
) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await send(pilot, "/chaos quirk vllm-reasoning")
        await wait_for(
            lambda: any("vllm-reasoning" in n.text for n in app.chat_log.query(Notice)), what="quirk", pause=pilot.pause
        )
        await send(pilot, "hello, how are you?")
        # The demo model thinks for seconds before its answer: the block is open meanwhile.
        await wait_for(
            lambda: any(b.text and not b.collapsed for b in app.chat_log.query(ThinkingBlock)),
            what="an open thinking block",
            pause=pilot.pause,
        )
        assert not _replies(app) or not _replies(app)[-1].text
        await wait_for(lambda: not app.turn_running, what="the answer", pause=pilot.pause)
        (block,) = app.chat_log.query(ThinkingBlock)
        assert block.collapsed and block.text.startswith("Okay, the user wrote")
        assert block.title.startswith("thought (") and block.title.endswith("click to show")
        # Enter on the highlighted block opens it, and its hint says how to close it.
        await pilot.press("alt+up", "up")
        assert app.block_nav.current is block
        await pilot.press("enter")
        await wait_for(lambda: not block.collapsed, what="the block open", pause=pilot.pause)
        assert block.title.endswith("click to hide"), block.title
        await pilot.press("enter")
        await wait_for(lambda: block.collapsed, what="the block closed", pause=pilot.pause)
        assert block.title.endswith("click to show"), block.title
        await pilot.press("escape")
        answer = _replies(app)[-1]
        assert answer.text.startswith("[holdfast-demo]") and block.text not in answer.text
        # An opened conversation shows the stored thinking, collapsed, before its answer.
        await app.open_conversation(app.conversation_id or "")
        await wait_for(lambda: bool(app.chat_log.query(ThinkingBlock)), what="history drawn", pause=pilot.pause)
        (stored,) = app.chat_log.query(ThinkingBlock)
        assert stored.collapsed and stored.text == block.text


async def test_a_cut_off_reply_is_marked_announced_and_continued(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "/chaos quirk truncating")
        await wait_for(
            lambda: any("truncating" in n.text for n in app.chat_log.query(Notice)), what="quirk", pause=pilot.pause
        )
        await send(pilot, "tell me a long story about the sea")
        await wait_for(lambda: not app.turn_running and bool(_replies(app)), what="the reply", pause=pilot.pause)
        cut = [n.text for n in app.chat_log.query(Notice) if "cut off" in n.text]
        got = int(cut[0].split("cut off after ", 1)[1].split(" ", 1)[0])  # the 512-token context's cut
        assert _replies(app)[-1].text.endswith(cut_off_note(app_config.config.llm.max_output_tokens, got))
        assert cut and "/continue" in cut[0]
        await send(pilot, "/continue")
        await wait_for(
            lambda: not app.turn_running and len(_replies(app)) == 2,
            what="the continued reply",
            pause=pilot.pause,
        )
        assert [u.text for u in app.chat_log.query(UserMessage)][-1] == CONTINUE_MESSAGE
