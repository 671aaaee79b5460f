"""Reply variants (issue 17, item 3): ``<`` / ``>`` on a highlighted reply switch between the
answers ``/retry`` kept for one user message; the chosen one is what the next prompt holds, it is
stored with the conversation, and it is still the chosen one after the app is started again.

Real Redis, the embedded demo LLM server. The two variants differ in shape so the demo's count of
what reached it tells them apart: under the ``unknown_tool`` fault the first answer is a tool call,
its (error) result and a final reply (2 assistant messages and 1 tool message in later prompts);
the retried answer is one plain reply (1 assistant message).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (120, 40)
WITH_TOOL = "(1 system, 2 user, 2 assistant, 1 tool)"
PLAIN = "(1 system, 2 user, 1 assistant)"


def _replies(app: HoldfastApp) -> list[AssistantMessage]:
    return list(app.chat_log.query(AssistantMessage))


def _notes(app: HoldfastApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def _settled(pilot, app: HoldfastApp, count: int) -> None:  # type: ignore[no-untyped-def]
    await wait_for(
        lambda: len(_replies(app)) == count and not app.turn_running, what=f"{count} replies", pause=pilot.pause
    )


async def test_the_chosen_variant_is_what_the_next_prompt_holds_and_it_persists(data_dir: Path, redis_url: str) -> None:
    config = make_config(data_dir, redis_url)
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.rt is not None
        await app.rt.chaos.faults(unknown_tool=True)
        await send(pilot, "hello there")
        await _settled(pilot, app, 1)
        tool_answer = _replies(app)[0]
        await app.rt.chaos.faults(unknown_tool=False)
        await send(pilot, "/retry")
        await _settled(pilot, app, 2)
        old, new = _replies(app)
        assert old is tool_answer and old.variant and not new.variant
        conversation = app.conversation_id
        assert conversation is not None

        # ">" on the newest variant: there is no later one; "<" picks the earlier (tool) answer.
        await pilot.press("alt+up")
        assert app.block_nav.current is new
        await pilot.press("greater_than_sign")
        await wait_for(lambda: any("no later variant" in n for n in _notes(app)), pause=pilot.pause)
        await pilot.press("less_than_sign")
        await wait_for(lambda: any("variant 1 of 2" in n for n in _notes(app)), what="the pick", pause=pilot.pause)
        first, second = _replies(app)
        assert not first.variant and second.variant  # redrawn: the pick is the answer now
        assert app.block_nav.current is first  # the highlight follows the pick
        info = await app.rt.get_conversation(conversation)
        assert len(info.variant_choices) == 1

        # The next prompt holds the tool answer (2 assistant messages and its tool result).
        await pilot.press("escape")
        await send(pilot, "thanks")
        await _settled(pilot, app, 3)
        assert WITH_TOOL in _replies(app)[-1].text, _replies(app)[-1].text

    # Started again: the pick is still shown, and still what prompts hold (loaded from Redis).
    again = HoldfastApp(config)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.conversation_id == conversation
        await wait_for(lambda: len(_replies(again)) == 3, what="the history", pause=pilot.pause)
        assert [r.variant for r in _replies(again)] == [False, True, False]
        await send(pilot, "and again")
        await _settled(pilot, again, 4)
        assert "(1 system, 3 user, 3 assistant, 1 tool)" in _replies(again)[-1].text, _replies(again)[-1].text

        # ">" on the picked reply goes to the later variant: prompts hold the plain answer again.
        await pilot.press("alt+up")
        nav = again.block_nav
        while nav.current is not _replies(again)[0]:
            await pilot.press("up")
        await pilot.press("greater_than_sign")
        await wait_for(lambda: any("variant 2 of 2" in n for n in _notes(again)), pause=pilot.pause)
        assert [r.variant for r in _replies(again)] == [True, False, False, False]
        await pilot.press("escape")
        await send(pilot, "last one")
        await _settled(pilot, again, 5)
        assert "(1 system, 4 user, 3 assistant)" in _replies(again)[-1].text, _replies(again)[-1].text
