"""The spec's ConversationContext.get_context and get_messages_for_prompt on the real
redis-server: what a spec reader gets back, within a token budget counted exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.context.tokens import TokenCounter
from runtime.core.errors import NotFoundError
from runtime.core.messages import ChatMessage, ToolCall
from runtime.state.client import RedisRunner
from runtime.state.conversations import HIDDEN, ConversationStore
from tests.support.clock import FakeClock

counter = TokenCounter("gpt-4o-mini")


@pytest.fixture
async def store(
    runner: RedisRunner, journal_dir: Path, wall: FakeClock, mono: FakeClock
) -> AsyncIterator[ConversationStore]:
    store = ConversationStore(
        runner,
        RedisConfig(key_prefix="t"),
        journal_dir=journal_dir,
        count_tokens=counter.count_message,
        clock=wall,
        monotonic=mono,
        sleep=mono.sleep,
    )
    yield store
    await store.close()


async def _conversation(store: ConversationStore) -> str:
    conv = await store.create("alice", title="spec", system_prompt="Be brief.")
    await store.add_message(conv, "user", "tell me about lighthouses " * 30)
    await store.add_message(conv, "assistant", "lighthouses guide ships " * 30)
    await store.add_message(conv, "user", "what is 2+2?")
    await store.add_message(
        conv, "assistant", "", tool_calls=[ToolCall("call_1", "calculator", '{"expression": "2+2"}')]
    )
    await store.add_message(conv, "tool", "4", tool_call_id="call_1", name="calculator")
    await store.add_message(conv, "assistant", "the model is unavailable", metadata={HIDDEN: True})
    await store.add_message(conv, "assistant", "It is 4.")
    return conv


async def test_get_context_returns_info_summary_and_messages(store: ConversationStore) -> None:
    conv = await _conversation(store)
    view = await store.get_context(conv)
    assert view is not None and view.info.system_prompt == "Be brief." and view.summary is None
    assert [m.role for m in view.messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "assistant",
    ]
    without = await store.get_context(conv, include_system=False)
    assert without is not None and without.info.system_prompt == ""
    assert await store.get_context("conv_missing") is None


async def test_messages_for_prompt_fit_the_budget_newest_first_and_keep_tool_calls_whole(
    store: ConversationStore,
) -> None:
    conv = await _conversation(store)
    everything = await store.get_messages_for_prompt(conv, max_tokens=100_000)
    assert [m["role"] for m in everything] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    assert all("unavailable" not in str(m["content"]) for m in everything)  # hidden stays out
    system_tokens = counter.count_message(ChatMessage("system", "Be brief."))
    assert await store.get_messages_for_prompt(conv, max_tokens=system_tokens) == everything[:1]
    seen = set()
    previous = 1
    for budget in range(system_tokens, 500, 3):
        kept = await store.get_messages_for_prompt(conv, max_tokens=budget)
        body = kept[1:]
        assert body == everything[len(everything) - len(body) :]  # the newest, in order
        assert not body or body[0]["role"] != "tool"  # never a result without its call
        assert len(kept) >= previous  # a bigger budget never keeps less
        previous = len(kept)
        seen.add(len(kept))
    # system; + "It is 4."; + the tool call and its result together (never 3: a call without
    # its result); + "what is 2+2?"; + each long message.
    assert seen == {1, 2, 4, 5, 6, 7}
    with pytest.raises(NotFoundError):
        await store.get_messages_for_prompt("conv_missing")
