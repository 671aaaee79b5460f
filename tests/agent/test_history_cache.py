"""A turn's prompt reads history through the store's decoded-tail cache and a read that runs
alongside memory recall: what another process wrote in between must still reach the prompt."""

from __future__ import annotations

from collections.abc import Callable

from runtime.agent import collect
from runtime.core.events import PromptBuilt, TurnFinished
from runtime.host.runtime import Runtime


def _report(events: list) -> object:
    return next(e for e in events if isinstance(e, PromptBuilt)).report


async def test_messages_another_process_appended_reach_the_next_prompt(runtime_factory: Callable[..., Runtime]) -> None:
    here, there = runtime_factory(), runtime_factory()
    async with here, there:
        conv = await here.agent.new_conversation("shared")
        first = await collect(here.agent.run_turn(conv, "hello from here"))
        assert isinstance(first[-1], TurnFinished) and not first[-1].failed
        # The other terminal adds an exchange of its own.
        await there.store.add_message(conv, "user", "the code word is heliotrope")
        await there.store.add_message(conv, "assistant", "noted: heliotrope")
        second = await collect(here.agent.run_turn(conv, "what is the code word?"))
        assert isinstance(second[-1], TurnFinished) and not second[-1].failed
        # This process's answer, the other's two messages and the new question are all sent.
        assert _report(second).messages_included == _report(first).messages_included + 4
        contents = [m.content for m in await here.store.read_tail(conv, 10)]
        assert contents[2:5] == ["the code word is heliotrope", "noted: heliotrope", "what is the code word?"]


async def test_summary_written_elsewhere_replaces_the_archived_history_in_the_prompt(
    runtime_factory: Callable[..., Runtime],
) -> None:
    here, there = runtime_factory(), runtime_factory()
    async with here, there:
        conv = await here.agent.new_conversation("shared")
        for text in ("one", "two", "three"):
            await collect(here.agent.run_turn(conv, text))
        before = _report(await collect(here.agent.run_turn(conv, "four")))
        assert not before.summary_used
        tail = await there.store.read_tail(conv, 20)
        await there.store.summarize(conv, "We counted to three.", tail[5].id, method="extractive")
        after = _report(await collect(here.agent.run_turn(conv, "five")))
        assert after.summary_used
        # Six messages went into the archive; the summary stands in for them.
        assert after.messages_included == before.messages_included + 2 - 6
