"""The demo model's answer under the request's limits (pure functions): ``max_tokens`` cuts with
``finish_reason: "length"``, ``stop`` ends the text, a small context window truncates, reasoning
is spent first, and ``tool_choice`` decides whether and which tool is called."""

from __future__ import annotations

import json

import pytest

from runtime.demo import model as demo_model
from runtime.demo.generation import generate
from runtime.demo.profiles import PROFILES
from runtime.demo.wire import Answer, completion_body, stream_events


def tool(name: str, prop: str) -> dict:
    schema = {"type": "object", "properties": {prop: {"type": "string"}}, "required": [prop]}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


TOOLS = [tool("calculator", "expression"), tool("clock", "timezone")]


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_max_tokens_cuts_text_and_says_length() -> None:
    reply = demo_model.respond(ask("tell me a long story"))
    whole = generate(reply)
    assert whole.finish_reason == "stop" and whole.text == reply.text
    cut = generate(reply, limit=10)
    assert cut.finish_reason == "length" and cut.completion_tokens == 10 and len(cut.pieces) == 10
    assert reply.text is not None and reply.text.startswith(cut.text or "")


def test_stop_sequences_end_the_text_before_the_first_match() -> None:
    reply = demo_model.respond(ask("hello"))
    stopped = generate(reply, stops=("You said", "message"))
    assert stopped.text == "[holdfast-demo] I received 1 " and stopped.finish_reason == "stop"
    assert generate(reply, stops=("never there",)).text == reply.text


def test_a_cut_tool_call_keeps_the_start_of_its_arguments() -> None:
    reply = demo_model.respond(ask("what is 2+3 and what time is it?"), TOOLS)
    assert [c.name for c in generate(reply).tool_calls] == ["calculator", "clock"]
    cut = generate(reply, limit=5)
    (call,) = cut.tool_calls
    assert cut.finish_reason == "length" and call.name == "calculator"
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.arguments)  # cut short, as OpenAI's would be


def test_reasoning_is_spent_before_the_answer() -> None:
    messages = ask("hello")
    reply = demo_model.respond(messages)
    thought = demo_model.thinking(messages, reply)
    full = generate(reply, reasoning=thought)
    assert full.reasoning_text == thought and full.text == reply.text
    starved = generate(reply, reasoning=thought, limit=5)
    assert starved.reasoning == tuple(demo_model.split_words(thought)[:5])
    assert starved.text == "" and starved.finish_reason == "length"


def test_a_small_context_window_holds_prompt_and_reply() -> None:
    reply = demo_model.respond(ask("tell me a long story"))
    fitted = generate(reply, context_window=200)
    assert fitted.finish_reason == "length" and fitted.prompt_tokens + fitted.completion_tokens == 200
    huge_prompt = demo_model.respond(ask("word " * 500 + "hello"))
    squeezed = generate(huge_prompt, context_window=200)
    assert squeezed.prompt_tokens == 150 and squeezed.completion_tokens <= 50


@pytest.mark.parametrize(
    ("choice", "forced", "text", "expected"),
    [
        ("auto", None, "what is 6*7?", [("calculator", {"expression": "6*7"})]),
        ("none", None, "what is 6*7?", []),
        ("required", None, "what is 6*7?", [("calculator", {"expression": "6*7"})]),
        ("required", None, "good morning", [("calculator", {"expression": "good morning"})]),
        ("auto", "clock", "what is 6*7 in Asia/Tokyo?", [("clock", {"timezone": "Asia/Tokyo"})]),
        ("auto", "calculator", "what time is it?", [("calculator", {"expression": "what time is it?"})]),
    ],
)
def test_tool_choice(choice: demo_model.ToolChoice, forced: str | None, text: str, expected: list) -> None:
    reply = demo_model.respond(ask(text), TOOLS, tool_choice=choice, forced_tool=forced)
    assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == expected
    assert (reply.text is None) == bool(expected)


def test_forced_tools_answer_in_words_after_the_tool_result() -> None:
    history = [
        *ask("what is 6*7?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    reply = demo_model.respond(history, TOOLS, tool_choice="required")
    assert reply.text == '[holdfast-demo] The calculator returned "42".'


def test_n_choices_share_one_prompt_in_usage() -> None:
    choice = generate(demo_model.respond(ask("hello")))
    body = completion_body(PROFILES["openai"], Answer("id", 0, "holdfast-demo", (choice,) * 3))
    assert body["usage"]["prompt_tokens"] == choice.prompt_tokens
    assert body["usage"]["completion_tokens"] == 3 * choice.completion_tokens


def test_several_choices_stream_interleaved_and_only_the_first_is_paced() -> None:
    choice = generate(demo_model.respond(ask("hello")))
    events = stream_events(PROFILES["openai"], Answer("id", 0, "holdfast-demo", (choice, choice)))
    order = [json.loads(e[6:])["choices"][0]["index"] for e, _ in events if e.startswith(b"data: {")]
    assert order[:6] == [0, 1, 0, 1, 0, 1]
    assert sum(1 for _, weight in events if weight) == len(choice.pieces)
