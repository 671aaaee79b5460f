"""The context window and the summariser against the real Redis conversation store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from runtime.config import ContextConfig, RedisConfig, ResilienceConfig
from runtime.context import ContextWindowManager, TokenCounter
from runtime.context.summarize import Summarizer
from runtime.core.events import EventBus
from runtime.core.messages import ChatMessage
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from tests.support.context import chat_turn, check_tool_pairing, tool_turn

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("gpt-4")


@pytest.fixture
async def store(redis_url: str, data_dir: Path, counter: TokenCounter) -> AsyncIterator[ConversationStore]:
    client = make_redis_client(redis_url)
    resilience = Resilience(ResilienceConfig(), EventBus())
    conversations = ConversationStore(
        RedisRunner(client, resilience.guard("redis")),
        RedisConfig(key_prefix="ctx"),
        journal_dir=data_dir / "journal",
        count_tokens=counter.count_message,
    )
    yield conversations
    await conversations.close()
    await client.aclose()


async def test_prompt_from_the_store_then_summarised_and_rebuilt(
    store: ConversationStore, counter: TokenCounter
) -> None:
    conv = await store.create("ana", system_prompt="sys")
    for n in range(60):
        for msg in tool_turn(n, output="value " * 30) if n % 4 == 0 else chat_turn(n, words=15):
            stored = await store.append(conv, msg)
            # The store saves the count computed once at append time.
            assert stored.token_count == counter.count_openai_message(msg.to_openai())
    live = await store.read_tail(conv, 10_000)
    manager = ContextWindowManager(counter, ContextConfig(reserved_output_tokens=200), 2000, reader=store)

    built = await manager.build_prompt("sys", conv, memories=["ana likes tea"])
    r = built.report
    check_tool_pairing(built.messages)
    assert built.messages[-1] == live[-1].to_openai()
    assert r.messages_dropped == len(live) - r.messages_included > 0
    assert counter.count_messages(built.messages) == r.prompt_tokens <= r.budget

    async def llm_summary(messages: Sequence[ChatMessage]) -> str:
        return f"Ana asked about {len(messages)} items; all were blue."

    summarizer = Summarizer(
        counter, ContextConfig(), 2000, reader=store, summarize_fn=llm_summary, swap_fn=store.summarize
    )
    result = await summarizer.maybe_summarize(conv)
    assert result is not None and result.status == "summarized"
    summary = await store.get_summary(conv)
    assert summary is not None and summary.text.startswith("Ana asked about")
    assert summary.covered_count == result.evicted
    remaining = await store.read_tail(conv, 10_000)
    assert len(remaining) == len(live) - result.evicted and remaining[0].role == "user"
    assert await summarizer.maybe_summarize(conv) is None  # below the high mark now

    rebuilt = await manager.build_prompt("sys", conv)
    assert rebuilt.report.summary_used
    assert "Ana asked about" in rebuilt.messages[1]["content"]
    # Dropped counts only live messages, not the archived ones the summary stands for.
    assert rebuilt.report.messages_dropped == len(remaining) - rebuilt.report.messages_included
    check_tool_pairing(rebuilt.messages)
