"""Property tests: over random conversations and budgets, the built prompt is always valid."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.config import ContextConfig
from runtime.context import ContextOverflowError, TokenCounter, build_prompt
from runtime.core.messages import ChatMessage, ToolCall
from tests.support.context import check_tool_pairing

COUNTER = TokenCounter("gpt-4")
SYSTEM = "You are Holdfast, be brief."
TAG = re.compile(r"^#(\d+) ")

# Prose, code, JSON, CJK and emoji, so token counts and len/4 disagree in both directions.
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "def f(x):",
    "return x**2",
    '{"k": [1, 2]}',
    "東京",
    "天気",
    "こんにちは",
    "🙂",
    "🚀🚀",
    "naïve",
    "Ωμέγα",
    "\n",
    "    ",
    "<|endoftext|>",
    "0xDEADBEEF",
]


@st.composite
def texts(draw: st.DrawFn, long: bool = False) -> str:
    # A size and a stride, not one draw per word: long texts stay cheap to generate and shrink.
    size = draw(st.integers(1, 900 if long else 40))
    start, stride = draw(st.integers(0, len(WORDS) - 1)), draw(st.integers(1, 7))
    return " ".join(WORDS[(start + i * stride) % len(WORDS)] for i in range(size))


@st.composite
def conversations(draw: st.DrawFn) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    tag = 0

    def next_tag() -> str:
        nonlocal tag
        tag += 1
        return f"#{tag} "

    for turn in range(draw(st.integers(0, 12))):
        history.append(ChatMessage(role="user", content=next_tag() + draw(texts(long=draw(st.booleans())))))
        for step in range(draw(st.integers(0, 2))):
            calls = [
                ToolCall(id=f"c{turn}_{step}_{k}", name="tool", arguments='{"q": "x"}')
                for k in range(draw(st.integers(1, 3)))
            ]
            history.append(ChatMessage(role="assistant", content=next_tag(), tool_calls=tuple(calls)))
            for call in calls:
                history.append(
                    ChatMessage(
                        role="tool", content=next_tag() + draw(texts(long=draw(st.booleans()))), tool_call_id=call.id
                    )
                )
        if draw(st.booleans()):
            history.append(ChatMessage(role="assistant", content=next_tag() + draw(texts())))
    if draw(st.booleans()):  # a stray result left by a crash must never be sent
        position = draw(st.integers(0, len(history)))
        history.insert(position, ChatMessage(role="tool", content=next_tag() + "stray", tool_call_id="lost"))
    return history


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=conversations(),
    window=st.integers(300, 6000),
    preview=st.integers(20, 300),
    memories=st.lists(texts(), max_size=4),
    with_tools=st.booleans(),
)
def test_built_prompts_fit_keep_what_matters_and_stay_valid(
    history: list[ChatMessage], window: int, preview: int, memories: list[str], with_tools: bool
) -> None:
    config = ContextConfig(reserved_output_tokens=100, tool_output_preview_tokens=preview)
    tools = [
        {
            "type": "function",
            "function": {"name": "tool", "description": "A tool.", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    built = build_prompt(COUNTER, config, window, SYSTEM, history, tools if with_tools else None, memories)
    r = built.report

    # Never over budget, by an independent recount of what is sent.
    sent = COUNTER.count_messages(built.messages) + COUNTER.count_tools(built.tools)
    assert sent == r.prompt_tokens <= r.budget == window - 100

    # The system prompt always leads.
    assert built.messages[0] == {"role": "system", "content": SYSTEM}

    history_out = [m for m in built.messages[1:] if not (m["role"] == "system" and not TAG.match(m["content"]))]
    # The newest user message is always there (possibly cut in the middle).
    users = [m for m in history if m.role == "user"]
    if users:
        sent_users = [m for m in history_out if m["role"] == "user"]
        assert sent_users, "newest user message missing"
        if r.user_message_truncated:
            assert sent_users[-1]["content"].startswith(users[-1].content[:3])
            assert f"[... {r.omitted_tokens} tokens omitted ...]" in sent_users[-1]["content"]
        else:
            assert sent_users[-1]["content"] == users[-1].content

    # Chronological, and never an orphan result or an unanswered call.
    order = [int(TAG.match(m["content"]).group(1)) for m in history_out if TAG.match(m["content"] or "")]
    assert order == sorted(order) and len(order) == len(set(order))
    check_tool_pairing(built.messages)


@settings(max_examples=40, deadline=None)
@given(history=conversations(), window=st.integers(1, 400))
def test_tiny_windows_either_fit_or_fail_loudly(history: list[ChatMessage], window: int) -> None:
    config = ContextConfig(reserved_output_tokens=50)
    try:
        built = build_prompt(COUNTER, config, window, SYSTEM, history)
    except ContextOverflowError:
        return
    assert COUNTER.count_messages(built.messages) <= window - 50


def test_property_strategy_produces_tool_groups_and_long_messages() -> None:
    # Guard against a vacuous property: the generator must reach the interesting cases.
    seen = {"tool_group": False, "long": False}

    @settings(max_examples=60, deadline=None)
    @given(conversations())
    def probe(history: list[ChatMessage]) -> None:
        seen["tool_group"] |= any(m.tool_calls for m in history)
        seen["long"] |= any(COUNTER.count_message(m) > 500 for m in history)

    probe()
    assert all(seen.values()), seen
