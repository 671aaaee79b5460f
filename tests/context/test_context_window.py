"""ContextWindowManager / build_prompt: budgets, whole tool turns, truncation, previews, reads."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runtime.config import ContextConfig
from runtime.context import ContextOverflowError, ContextWindowManager, TokenCounter, build_prompt
from runtime.context.window import MEMORIES_HEADER, SUMMARY_HEADER
from runtime.core.errors import ValidationError
from runtime.core.messages import ChatMessage, ConversationSummary
from runtime.llm.prompt_tools import INSTRUCTION, describe_tools, with_tools_in_prompt
from tests.support.context import MemoryHistory, chat_turn, check_tool_pairing, tool_turn

SYSTEM = "You are Holdfast."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look an item up.",
            "parameters": {"type": "object", "properties": {"item": {"type": "integer", "description": "Item number"}}},
        },
    }
]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("gpt-4")


def cfg(**kw: int | float) -> ContextConfig:
    return ContextConfig(**{"reserved_output_tokens": 100, **kw})


def sent_tokens(counter: TokenCounter, built) -> int:
    return counter.count_messages(built.messages) + counter.count_tools(built.tools)


def test_short_history_is_sent_whole_and_the_report_adds_up(counter: TokenCounter) -> None:
    history = chat_turn(1) + tool_turn(2) + chat_turn(3)
    built = build_prompt(counter, cfg(), 4000, SYSTEM, history, TOOLS, ["user likes tea"])
    r = built.report
    assert built.messages[0] == {"role": "system", "content": SYSTEM}
    assert built.messages[1]["content"].startswith(MEMORIES_HEADER) and "user likes tea" in built.messages[1]["content"]
    assert built.messages[2:] == [m.to_openai() for m in history]
    assert built.tools == TOOLS and r.tools_mode == "native" and r.tools_tokens == counter.count_tools(TOOLS) > 0
    assert (r.messages_included, r.messages_dropped, r.truncated) == (len(history), 0, False)
    assert r.budget == 3900 and r.reserved_tokens == 100
    assert r.prompt_tokens == sent_tokens(counter, built) <= r.budget
    assert r.history_tokens == sum(counter.count_message(m) for m in history)


def test_newest_turns_are_kept_oldest_dropped_in_chronological_order(counter: TokenCounter) -> None:
    history = [m for n in range(40) for m in chat_turn(n, words=30)]
    built = build_prompt(counter, cfg(), 1200, SYSTEM, history)
    r = built.report
    kept = built.messages[1:]
    assert 0 < r.messages_included < len(history)
    assert r.messages_dropped == len(history) - r.messages_included
    assert kept == [m.to_openai() for m in history[-len(kept) :]]  # a contiguous newest span
    assert sent_tokens(counter, built) <= r.budget
    # Nearly full: the next older message would not have fit.
    older = history[-len(kept) - 1]
    assert r.free_tokens < counter.count_message(older)


def test_a_tool_call_and_its_results_are_kept_or_dropped_together(counter: TokenCounter) -> None:
    history = tool_turn(1, calls=3, output="x " * 60) + chat_turn(2)
    group_cost = sum(counter.count_message(m) for m in history[1:5])
    tail_cost = sum(counter.count_message(m) for m in history[5:])
    system_cost = counter.count_openai_message({"role": "system", "content": SYSTEM})
    # Room for the last answer and part of the tool group, not all of it.
    window = 100 + system_cost + 3 + tail_cost + group_cost - 5
    built = build_prompt(counter, cfg(), window, SYSTEM, history)
    check_tool_pairing(built.messages)
    assert built.messages[1:] == [m.to_openai() for m in history[5:]]
    built = build_prompt(counter, cfg(), window + 5, SYSTEM, history)
    check_tool_pairing(built.messages)
    assert built.messages[1:] == [m.to_openai() for m in history[1:]]


def test_orphan_results_and_unanswered_calls_are_never_sent(counter: TokenCounter) -> None:
    turn = tool_turn(1, calls=2)
    unanswered = turn[:3] + turn[4:]  # second result missing
    orphan = [ChatMessage(role="tool", content="stray", tool_call_id="call_gone")]
    history = orphan + unanswered + chat_turn(2)
    built = build_prompt(counter, cfg(), 4000, SYSTEM, history)
    check_tool_pairing(built.messages)
    assert all(m["role"] != "tool" for m in built.messages)
    # The stray result, and the call whose second result is missing together with its one result.
    assert built.report.unsendable_dropped == 3
    assert [m["content"][:2] for m in built.messages[1:]] == ["#1", "#1", "#2", "#2"]


def test_long_old_tool_outputs_shrink_to_a_preview_before_turns_are_dropped(counter: TokenCounter) -> None:
    big = "row " * 1500
    history = [m for n in range(4) for m in tool_turn(n, output=big)]
    built = build_prompt(counter, cfg(tool_output_preview_tokens=100), 2500, SYSTEM, history)
    r = built.report
    check_tool_pairing(built.messages)
    assert r.messages_dropped == 0 and r.tool_outputs_shrunk >= 3 and r.truncated
    previews = [m for m in built.messages if m["role"] == "tool" and "tool output omitted" in m["content"]]
    assert len(previews) == r.tool_outputs_shrunk
    assert sent_tokens(counter, built) <= r.budget
    # The leftover budget restores the newest output first, never an older one before it.
    tool_msgs = [m for m in built.messages if m["role"] == "tool"]
    shrunk_flags = ["omitted" in m["content"] for m in tool_msgs]
    assert shrunk_flags == sorted(shrunk_flags, reverse=True)


def test_an_oversized_newest_message_is_cut_in_the_middle_with_a_marker(counter: TokenCounter) -> None:
    text = "BEGIN " + " ".join(f"w{i}" for i in range(5000)) + " END"
    history = [*chat_turn(1), ChatMessage(role="user", content=text)]
    built = build_prompt(counter, cfg(), 1000, SYSTEM, history)
    r = built.report
    last = built.messages[-1]
    assert last["role"] == "user" and last["content"].startswith("BEGIN") and last["content"].endswith("END")
    assert f"[... {r.omitted_tokens} tokens omitted ...]" in last["content"]
    assert r.user_message_truncated and r.omitted_tokens > 4000
    assert sent_tokens(counter, built) <= r.budget
    assert history[-1].content == text  # the stored message is untouched


def test_text_tool_mode_counts_the_prompt_description_the_client_sends(counter: TokenCounter) -> None:
    """Tools described in text have one owner, the LLM client: the window hands it the schemas
    and counts the very text it will write (instruction included), so the budget holds."""
    built = build_prompt(
        counter, cfg(), 4000, SYSTEM, chat_turn(1), TOOLS, native_tools=False, tools_text=describe_tools
    )
    assert built.report.tools_mode == "text"
    assert [t["function"]["name"] for t in built.tools or ()] == ["lookup"]
    assert built.messages[0] == {"role": "system", "content": SYSTEM}  # the client adds the description
    sent = with_tools_in_prompt(built.messages, built.tools or ())
    assert sent[0]["content"].startswith(SYSTEM + "\n\nAvailable tools:\n- lookup: Look an item up.")
    assert sent[0]["content"].endswith(INSTRUCTION)
    assert built.report.prompt_tokens == counter.count_messages(sent)


def test_memories_that_do_not_fit_are_left_out_and_counted(counter: TokenCounter) -> None:
    memories = ["short fact", "long " * 800, "another short fact"]
    built = build_prompt(counter, cfg(), 600, SYSTEM, chat_turn(1), memories=memories)
    r = built.report
    assert (r.memories_included, r.memories_dropped) == (2, 1)
    content = built.messages[1]["content"]
    assert "short fact" in content and "another short fact" in content and "long long" not in content


def test_summary_is_sent_before_history_and_reported(counter: TokenCounter) -> None:
    summary = ConversationSummary(text="They discussed tea.", covers_up_to="m", covered_count=40, method="extractive")
    built = build_prompt(counter, cfg(), 4000, SYSTEM, chat_turn(50), summary=summary)
    assert (
        built.messages[1]["content"].startswith(SUMMARY_HEADER)
        and "They discussed tea." in built.messages[1]["content"]
    )
    assert "40 earlier messages, extractive" in built.messages[1]["content"]
    assert built.report.summary_used and built.report.summary_method == "extractive" and built.report.summary_tokens > 0


def test_a_system_prompt_larger_than_the_budget_is_a_clear_error(counter: TokenCounter) -> None:
    with pytest.raises(ContextOverflowError, match="do not fit the prompt budget"):
        build_prompt(counter, cfg(), 300, "rules " * 400, chat_turn(1))
    with pytest.raises(ContextOverflowError, match="no room"):
        build_prompt(counter, cfg(reserved_output_tokens=5000), 4000, SYSTEM, chat_turn(1))


def test_max_prompt_tokens_caps_the_budget(counter: TokenCounter) -> None:
    built = build_prompt(counter, cfg(max_prompt_tokens=500), 128_000, SYSTEM, [])
    assert built.report.budget == 500 and built.report.context_window == 128_000


class CountingSequence(Sequence[ChatMessage]):
    """A history that records which positions the builder looked at."""

    def __init__(self, items: list[ChatMessage]) -> None:
        self.items = items
        self.touched: set[int] = set()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, slice):
            self.touched.update(range(*index.indices(len(self.items))))
        else:
            self.touched.add(index % len(self.items))
        return self.items[index]


def test_in_memory_history_is_read_only_as_far_as_the_budget_goes(counter: TokenCounter) -> None:
    history = CountingSequence([m for n in range(5000) for m in chat_turn(n, words=10)])
    built = build_prompt(counter, cfg(), 2000, SYSTEM, history)
    assert built.report.messages_dropped == 10_000 - built.report.messages_included
    assert len(history.touched) <= built.report.messages_included + 2


async def test_manager_reads_the_store_tail_in_bounded_pages(counter: TokenCounter) -> None:
    store = MemoryHistory()
    for n in range(3000):
        for msg in tool_turn(n) if n % 3 == 0 else chat_turn(n, words=8):
            store.append("c1", counter.with_count(msg))
    # Archive the first 8 messages (two turns) under a summary, as the store does.
    await store.summarize("c1", "Earlier: colours.", store.messages["c1"][7].id)
    assert store.summaries["c1"].covered_count == 8 and store.messages["c1"][0].seq == 8
    manager = ContextWindowManager(counter, cfg(), 3000, reader=store)
    built = await manager.build_prompt(SYSTEM, "c1", TOOLS, ["likes blue"])
    check_tool_pairing(built.messages)
    r = built.report
    assert r.summary_used and r.memories_included == 1
    total = len(store.messages["c1"])
    assert r.messages_dropped == total - r.messages_included
    # Reads grow with what is kept, not with the 10k-message conversation.
    assert store.messages_read <= 2 * r.messages_included + 64
    # Same answer as the pure builder over the same data.
    pure = build_prompt(
        counter, cfg(), 3000, SYSTEM, store.messages["c1"], TOOLS, ["likes blue"], summary=store.summaries["c1"]
    )
    assert pure.messages == built.messages and pure.report == r


async def test_a_conversation_id_needs_a_reader(counter: TokenCounter) -> None:
    manager = ContextWindowManager(counter, cfg(), 3000)
    with pytest.raises(ValidationError, match="no history reader"):
        await manager.build_prompt(SYSTEM, "c1")


async def test_tool_steps_after_the_newest_user_message_are_kept(counter: TokenCounter) -> None:
    # Mid-turn: the model called tools and now needs their results to answer.
    history = [m for n in range(30) for m in chat_turn(n, words=30)] + tool_turn(99, calls=2)[:-1]
    built = build_prompt(counter, cfg(), 1500, SYSTEM, history)
    check_tool_pairing(built.messages)
    assert [m["role"] for m in built.messages[-4:]] == ["user", "assistant", "tool", "tool"]
