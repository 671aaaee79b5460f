"""The demo model's rules: tool calls only when offered and clearly asked for, replies that show
what reached the model, and determinism."""

from __future__ import annotations

import json
import math

import pytest

from runtime.core.errors import ValidationError
from runtime.demo import model as demo_model
from runtime.demo.faults import Faults, FaultState


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": name, "parameters": {}}}


ALL_TOOLS = [tool("calculator"), tool("clock"), tool("memory")]


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("what is (12 + 3) * 4?", "calculator", {"expression": "(12 + 3) * 4"}),
        ("compute 2.5/5 please", "calculator", {"expression": "2.5/5"}),
        ("What time is it?", "clock", {"timezone": "UTC"}),
        ("what's the date in Europe/Paris", "clock", {"timezone": "Europe/Paris"}),
        ("what time is it in PST", "clock", {"timezone": "PST"}),
        ("Remember that my cat is called Tom.", "memory", {"action": "remember", "text": "my cat is called Tom"}),
        ("remember: 2+2 is my lucky sum", "memory", {"action": "remember", "text": "2+2 is my lucky sum"}),
    ],
)
def test_clear_requests_become_tool_calls_when_the_tool_is_offered(text: str, name: str, args: dict) -> None:
    reply = demo_model.respond(user(text), ALL_TOOLS)
    assert reply.text is None and reply.finish_reason == "tool_calls"
    (call,) = reply.tool_calls
    assert call.name == name
    assert json.loads(call.arguments) == args


def test_many_sums_make_at_most_max_tool_calls_in_order() -> None:
    text = " and ".join(f"{i}+{i}" for i in range(100)) + " and 0+0"
    calls = demo_model.respond(user(text), ALL_TOOLS).tool_calls
    assert [json.loads(c.arguments)["expression"] for c in calls] == [f"{i}+{i}" for i in range(32)]
    assert demo_model.MAX_TOOL_CALLS == 32


@pytest.mark.parametrize(
    ("text", "expressions"),
    [
        ("8*1  21+1^7) and 7+8*x", ["8*1", "21+1^7)", "7+8"]),  # a sum right after spaces or a tab
        ("x 6\t4-37 and (2 + 3) * 4", ["4-37", "(2 + 3) * 4"]),
        ("1.2.3+4 then --5+6", ["2.3+4", "-5+6"]),
        ("12345678901234567890 alone, and 3 numbers 4 5", []),
    ],
)
def test_arithmetic_is_found_where_it_starts(text: str, expressions: list[str]) -> None:
    calls = demo_model.respond(user(text), ALL_TOOLS).tool_calls
    assert [json.loads(c.arguments)["expression"] for c in calls] == expressions


def test_memories_and_facts_are_read_line_by_line() -> None:
    system = "[Memory from a]: I live in Lisbon\n[Memory from b]:   \n[Memory from c\n]: not a memory\n- [Memory from d]: I like tea  "
    found = demo_model.recalled_memories([{"role": "system", "content": system}])
    assert [(m.source, m.text) for m in found] == [("a", "I live in Lisbon"), ("d", "I like tea")]
    assert not demo_model.respond(user("remember   "), ALL_TOOLS).tool_calls  # nothing to remember
    (call,) = demo_model.respond(user("remember that I like tea.  "), ALL_TOOLS).tool_calls
    assert json.loads(call.arguments) == {"action": "remember", "text": "I like tea"}


def test_no_tool_call_for_a_tool_that_was_not_offered() -> None:
    reply = demo_model.respond(user("what is 6*7?"), [tool("clock")])
    assert not reply.tool_calls
    assert reply.text is not None and reply.text.startswith("[holdfast-demo]")
    assert demo_model.respond(user("what is 6*7?"), None).tool_calls == ()


def test_plain_numbers_are_not_arithmetic() -> None:
    assert not demo_model.respond(user("I was born in 1990 and have 2 cats"), ALL_TOOLS).tool_calls


def test_answers_from_the_tool_result_naming_the_tool() -> None:
    messages = [
        *user("what is 6*7?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    reply = demo_model.respond(messages, ALL_TOOLS)
    assert reply.text == '[holdfast-demo] The calculator returned "42".'
    assert reply.finish_reason == "stop"


def test_reply_counts_messages_and_quotes_the_relevant_memory() -> None:
    messages = [
        {
            "role": "system",
            "content": "You are Holdfast.\n[Memory from 2024-05-01]: I live in Lisbon\n"
            "[Memory from 2024-05-02]: My cat Tom hates the vet",
        },
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "what does my cat think of the vet?"},
    ]
    text = demo_model.respond(messages).text
    assert text is not None
    assert "I received 4 messages (1 system, 2 user, 1 assistant)" in text
    assert 'I see 2 recalled memories; the relevant one (2024-05-02) says: "My cat Tom hates the vet"' in text
    assert "Lisbon" not in text


def test_the_count_names_every_role_in_good_english() -> None:
    alone = [{"role": "user", "content": "hi"}]
    assert demo_model.respond(alone).text == (
        '[holdfast-demo] I received 1 message (1 user). You said: "hi". I see no recalled memories.'
    )
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "function", "name": "f", "content": "x"},
        {"role": "user", "content": "hi"},
    ]
    text = demo_model.respond(messages).text or ""
    assert text.startswith("[holdfast-demo] I received 3 messages (1 developer, 1 user, 1 function).")
    lone = demo_model.thinking(alone, demo_model.respond(alone))
    assert "There is 1 message in this conversation;" in lone
    two = user("hi")
    assert "There are 2 messages in this conversation;" in demo_model.thinking(two, demo_model.respond(two))


def test_unrelated_memories_are_counted_but_not_quoted() -> None:
    messages = [
        {"role": "system", "content": "[Memory from a]: I live in Lisbon"},
        {"role": "user", "content": "tell me a joke"},
    ]
    text = demo_model.respond(messages).text or ""
    assert "1 recalled memory, none related" in text
    assert "Lisbon" not in text


def test_replies_are_deterministic() -> None:
    assert demo_model.respond(user("what is 1+1"), ALL_TOOLS) == demo_model.respond(user("what is 1+1"), ALL_TOOLS)
    assert demo_model.respond(user("hello")) == demo_model.respond(user("hello"))


def test_streamed_words_join_back_to_the_reply() -> None:
    text = demo_model.respond(user("hello   there\nfriend")).text or ""
    assert "".join(demo_model.split_words(text)) == text


def test_embeddings_are_deterministic_unit_vectors_that_reflect_words() -> None:
    a, b, c = (demo_model.embed(t) for t in ("the cat sat", "the cat sat", "stock market crash"))
    assert a == b and len(a) == demo_model.EMBED_DIM
    assert math.isclose(sum(v * v for v in a), 1.0, rel_tol=1e-9)
    same = sum(x * y for x, y in zip(a, demo_model.embed("cat sat"), strict=True))
    other = sum(x * y for x, y in zip(a, c, strict=True))
    assert same > other


def test_fault_counters_break_exactly_the_next_requests() -> None:
    state = FaultState(Faults(fail_next=2, rate_limit_next=1))
    assert [state.decide() for _ in range(5)] == ["rate_limit", "error", "error", "ok", "ok"]
    assert state.requests == 5


def test_model_listings_neither_use_up_nor_get_the_counted_faults() -> None:
    # A client's health probe (GET /models) between two chat calls must not eat "fail the next 2".
    state = FaultState(Faults(fail_next=2, rate_limit_next=1))
    listing = [state.decide(model_call=False) for _ in range(3)]
    assert listing == ["ok", "ok", "ok"]
    assert [state.decide() for _ in range(4)] == ["rate_limit", "error", "error", "ok"]
    # ... while a server that is down or hanging is so for every request.
    for fault in ({"down": True}, {"hang": True}):
        assert FaultState(Faults(**fault)).decide(model_call=False) in ("down", "hang")


def test_random_faults_replay_with_the_same_seed() -> None:
    one, two = FaultState(Faults(error_rate=0.5), seed=7), FaultState(Faults(error_rate=0.5), seed=7)
    first = [one.decide() for _ in range(50)]
    assert first == [two.decide() for _ in range(50)]
    assert 10 < first.count("error") < 40


def test_fault_updates_are_validated() -> None:
    state = FaultState()
    assert state.update({"down": "true", "latency": "0.5"}).down is True
    with pytest.raises(ValidationError, match="unknown fault 'explode'"):
        state.update({"explode": True})
    with pytest.raises(ValidationError, match="error_rate"):
        state.update({"error_rate": 2})
    assert state.update({"reset": True}) == Faults()
