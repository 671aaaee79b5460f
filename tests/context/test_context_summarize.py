"""Summarisation policy: high/low water marks, turn-safe eviction, LLM-or-extractive summaries."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from runtime.config import ContextConfig
from runtime.context import TokenCounter, build_prompt
from runtime.context.summarize import (
    Summarizer,
    WaterMarks,
    extractive_summary,
    plan_eviction,
    should_summarize,
    summary_request,
    water_marks,
)
from runtime.core.errors import CircuitOpenError, ServiceUnavailableError
from runtime.core.messages import ChatMessage
from tests.support.context import MemoryHistory, chat_turn, check_tool_pairing, tool_turn

CONV = "conv-1"


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("gpt-4")


def test_water_marks_are_fractions_of_the_budget() -> None:
    assert water_marks(1000, 0.8, 0.5) == WaterMarks(high=800, low=500)
    # A low mark at or above the high one would summarise every turn: clamped.
    assert water_marks(1000, 0.5, 0.9) == WaterMarks(high=500, low=250)


@pytest.mark.parametrize(
    ("tokens", "floor", "expected"),
    [
        (799, None, False),  # below the high mark
        (800, None, True),  # first crossing
        (850, 820, False),  # failed attempt at 820: wait one gap (300)
        (1119, 820, False),
        (1120, 820, True),
        (800, 480, True),  # after a success history sits below low; back at high = one gap grown
        (810, 900, True),  # history shrank below the floor (cleared): normal rule again
    ],
)
def test_should_summarize_once_per_gap(tokens: int, floor: int | None, expected: bool) -> None:
    assert should_summarize(tokens, WaterMarks(high=800, low=500), floor) is expected


def test_plan_eviction_ends_at_a_turn_boundary_and_spares_the_current_turn(counter: TokenCounter) -> None:
    msgs = chat_turn(1) + tool_turn(2, calls=2) + chat_turn(3) + tool_turn(4)
    counts = [10] * len(msgs)
    # Must go down to 30 tokens: evicting through turn 3 is the most allowed (turn 4 is current).
    k = plan_eviction(msgs, counts, target_tokens=30)
    assert msgs[k].role == "user" and msgs[k].content.startswith("#4")
    check_tool_pairing([m.to_openai() for m in msgs[k:]])
    # A generous target evicts only the first turn.
    assert plan_eviction(msgs, counts, target_tokens=len(msgs) * 10 - 15) == 2
    assert plan_eviction(chat_turn(1), [10, 10], 0) == 0  # a single turn cannot go


def test_extractive_summary_keeps_first_sentences_and_fits(counter: TokenCounter) -> None:
    msgs = [
        ChatMessage(role="user", content="My cat is called Miso. She is nine."),
        ChatMessage(role="assistant", content="Nice name! Tell me more."),
    ]
    text = extractive_summary(counter, msgs, 200)
    assert "- user: My cat is called Miso." in text and "She is nine" not in text
    assert "- assistant: Nice name!" in text
    long = [ChatMessage(role="user", content=f"Fact number {i} is here. Detail.") for i in range(300)]
    assert counter.count_text(extractive_summary(counter, long, 100)) <= 100


def test_summary_request_asks_the_llm_with_the_whole_span() -> None:
    req = summary_request(tool_turn(1))
    assert req[0]["role"] == "system" and "Summarise" in req[0]["content"]
    assert "lookup(" in req[1]["content"] and "item 1 is blue" in req[1]["content"]


class Fns:
    """summarize_fn / swap_fn doubles that record calls; the swap is the in-memory store's."""

    def __init__(self, store: MemoryHistory, *, fail_llm: Exception | None = None) -> None:
        self.store = store
        self.fail_llm = fail_llm
        self.llm_inputs: list[list[ChatMessage]] = []

    async def summarize(self, messages: Sequence[ChatMessage]) -> str:
        self.llm_inputs.append(list(messages))
        if self.fail_llm is not None:
            raise self.fail_llm
        return f"LLM summary of {len(messages)} messages."


def grow(store: MemoryHistory, counter: TokenCounter, n: int) -> None:
    for msg in chat_turn(n, words=40):
        store.append(CONV, counter.with_count(msg))


async def test_summarises_once_at_the_high_mark_then_not_until_the_next_gap(counter: TokenCounter) -> None:
    store = MemoryHistory()
    fns = Fns(store)
    budget = 2000  # high 1600, low 1000
    summarizer = Summarizer(
        counter, ContextConfig(), budget, reader=store, summarize_fn=fns.summarize, swap_fn=store.summarize
    )
    runs: list[int] = []
    for n in range(40):
        grow(store, counter, n)
        result = await summarizer.maybe_summarize(CONV)
        if result is not None:
            assert result.status == "summarized"
            assert result.history_tokens_before >= 1600 and result.history_tokens_after <= 1000
            runs.append(n)
    # Each turn adds ~90 tokens; one run per ~600-token gap, never on consecutive turns.
    assert len(runs) >= 3
    assert all(b - a >= 5 for a, b in itertools.pairwise(runs))
    summary = store.summaries[CONV]
    assert summary.method == "llm" and summary.covered_count + len(store.messages[CONV]) == 80
    # A new summary covers the previous one plus the evicted span.
    assert fns.llm_inputs[1][0].role == "system" and "LLM summary of" in fns.llm_inputs[1][0].content
    # The prompt uses it in place of the archived start.
    built = build_prompt(
        counter, ContextConfig(reserved_output_tokens=0), budget, "sys", store.messages[CONV], summary=summary
    )
    assert built.report.summary_used and built.report.messages_dropped == 0


async def test_an_unavailable_llm_falls_back_to_an_extractive_summary(counter: TokenCounter) -> None:
    store = MemoryHistory()
    fns = Fns(store, fail_llm=CircuitOpenError("llm", 30.0))
    summarizer = Summarizer(
        counter, ContextConfig(), 2000, reader=store, summarize_fn=fns.summarize, swap_fn=store.summarize
    )
    result = None
    n = 0
    while result is None:
        grow(store, counter, n)
        n += 1
        result = await summarizer.maybe_summarize(CONV)
    assert result.status == "summarized" and result.summary is not None
    assert result.summary.method == "extractive" and store.summaries[CONV].method == "extractive"
    assert "Extractive summary" in result.summary.text and "#0 question0" in result.summary.text


async def test_a_failing_summariser_leaves_the_conversation_unchanged(counter: TokenCounter) -> None:
    store = MemoryHistory()
    fns = Fns(store, fail_llm=ServiceUnavailableError("llm down"))
    summarizer = Summarizer(
        counter,
        ContextConfig(),
        2000,
        reader=store,
        summarize_fn=fns.summarize,
        swap_fn=store.summarize,
        extractive_fallback=False,
    )
    result = None
    n = 0
    while result is None:
        grow(store, counter, n)
        n += 1
        result = await summarizer.maybe_summarize(CONV)
    before = list(store.messages[CONV])
    assert result.status == "failed" and CONV not in store.summaries
    assert store.messages[CONV] == before and len(before) == 2 * n
    # Not retried on every turn: the next attempt waits for one gap of growth.
    attempts = len(fns.llm_inputs)
    grow(store, counter, n)
    assert await summarizer.maybe_summarize(CONV) is None
    assert len(fns.llm_inputs) == attempts


async def test_a_failed_swap_leaves_history_unchanged(counter: TokenCounter) -> None:
    store = MemoryHistory()

    async def broken_swap(*_: object, **__: object) -> None:
        raise ServiceUnavailableError("redis is down", service="redis")

    summarizer = Summarizer(
        counter, ContextConfig(), 2000, reader=store, summarize_fn=Fns(store).summarize, swap_fn=broken_swap
    )
    result = None
    n = 0
    while result is None:
        grow(store, counter, n)
        n += 1
        result = await summarizer.maybe_summarize(CONV)
    assert result.status == "failed" and "redis is down" in (result.error or "")
    assert len(store.messages[CONV]) == 2 * n and CONV not in store.summaries
