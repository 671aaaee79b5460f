"""What reaches the model beyond the last message: recalled memories (the demo model quotes
them back) and, once history passes the high-water mark, a summary in place of the archived
start. Real demo LLM server, real Redis, real LanceDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runtime.agent import collect, final_text
from runtime.core.events import PromptBuilt, TurnFinished
from runtime.host.runtime import Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


async def test_a_recalled_memory_reaches_the_model(rt: Runtime) -> None:
    await rt.memory.store_memory("alice", "older", "My cat is called Tom")
    await rt.memory.store_memory("alice", "older", "I work as a lighthouse keeper")
    await rt.memory.wait_idle()
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "what is my cat called?"))
    # The demo model quotes the memory from what it was sent: it got there through the prompt.
    assert "the relevant one" in final_text(events) and '"My cat is called Tom"' in final_text(events)


async def test_without_memory_the_model_sees_none(runtime_factory: Callable[..., Runtime]) -> None:
    async with runtime_factory(memory={"enabled": False}) as rt:
        conv = await rt.agent.new_conversation()
        events = await collect(rt.agent.run_turn(conv, "what is my cat called?"))
    assert "I see no recalled memories." in final_text(events)


def padded(index: int, counter: object, tokens: int) -> str:
    """A user message of about ``tokens`` tokens that starts with a findable fact."""
    words = [f"Fact {index}: my locker number is {1000 + index}."]
    while counter.count_text(" ".join(words)) < tokens:  # type: ignore[attr-defined]
        words.append("and this sentence pads the message so the history grows quickly")
    return " ".join(words)


async def test_history_past_the_high_water_mark_is_summarised_and_archived(
    runtime_factory: Callable[..., Runtime],
) -> None:
    # Budget 1500 tokens: summarise at 1200 history tokens, down to 750.
    rt = runtime_factory(
        context={"max_prompt_tokens": 1500, "summarize_at": 0.8, "summarize_to": 0.5}, memory={"enabled": False}
    )
    async with rt:
        conv = await rt.agent.new_conversation()
        # Seven earlier exchanges of ~150 tokens each: just under the high mark.
        for i in range(7):
            await rt.store.add_message(conv, "user", padded(i, rt.counter, 150))
            await rt.store.add_message(conv, "assistant", f"Noted fact {i}.")
        before = await rt.store.read_tail(conv, 100)
        assert await rt.store.get_summary(conv) is None

        events = await collect(rt.agent.run_turn(conv, padded(7, rt.counter, 150)))
        assert isinstance(events[-1], TurnFinished) and not events[-1].failed
        await rt.agent.wait_background()

        summary = await rt.store.get_summary(conv)
        assert summary is not None and summary.method == "llm"
        # The demo model "summarises" by quoting what it was given: the oldest fact.
        assert "Fact 0" in summary.text and summary.covered_count >= 2
        live = await rt.store.read_tail(conv, 100)
        archived_ids = {m.id for m in before[: summary.covered_count]}
        assert summary.covers_up_to == before[summary.covered_count - 1].id
        assert not archived_ids & {m.id for m in live}
        assert live[0].role == "user" and len(live) == len(before) + 2 - summary.covered_count
        history_tokens = sum(rt.counter.count_message(m) for m in live)
        assert history_tokens < 1200 and rt.agent.summarizer.marks.high == 1200

        # The next prompt carries the summary instead of the archived messages.
        events = await collect(rt.agent.run_turn(conv, "what was fact 0?"))
        report = next(e for e in events if isinstance(e, PromptBuilt)).report
        assert report.summary_used and report.summary_tokens > 0
