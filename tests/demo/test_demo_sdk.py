"""The demo server as a third-party client sees it: the official ``openai`` SDK over real HTTP
against the server child process. Every parameter the SDK sends is honoured (``max_tokens``,
``tool_choice``, ``n``, ``stop``, ``stream_options.include_usage``), models can be retrieved,
and mistakes come back as the SDK's typed errors."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from runtime.demo import model as demo_model

pytestmark = pytest.mark.e2e

MODEL = "holdfast-demo"
TOOLS: list = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "arithmetic",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "clock",
            "description": "the time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
        },
    },
]


def user(text: str) -> list:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def sdk(demo_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with httpx.AsyncClient() as http:
        yield openai.AsyncOpenAI(base_url=demo_url, api_key="unused", max_retries=0, http_client=http)


async def test_max_tokens_cuts_the_reply_and_says_length(sdk: openai.AsyncOpenAI) -> None:
    whole = await sdk.chat.completions.create(model=MODEL, messages=user("tell me a long story"))
    assert whole.choices[0].finish_reason == "stop" and whole.usage.completion_tokens >= 2000

    one = await sdk.chat.completions.create(model=MODEL, messages=user("tell me a long story"), max_tokens=1)
    assert one.choices[0].finish_reason == "length"
    assert one.choices[0].message.content == "[holdfast-demo] "
    assert one.usage.completion_tokens == 1

    stream = await sdk.chat.completions.create(
        model=MODEL, messages=user("tell me a long story"), max_completion_tokens=5, stream=True
    )
    pieces, reasons = [], []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert len(pieces) == 5 and reasons == ["length"]
    assert whole.choices[0].message.content.startswith("".join(pieces))


async def test_tool_choice_none_auto_required_and_named(sdk: openai.AsyncOpenAI) -> None:
    async def ask(text: str, choice: object) -> openai.types.chat.ChatCompletion:
        return await sdk.chat.completions.create(model=MODEL, messages=user(text), tools=TOOLS, tool_choice=choice)  # type: ignore[arg-type]

    auto = await ask("what is 6*7?", "auto")
    assert [c.function.name for c in auto.choices[0].message.tool_calls] == ["calculator"]

    none = await ask("what is 6*7?", "none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"
    assert none.choices[0].message.content.startswith("[holdfast-demo] I received 1 message (1 user).")

    required = await ask("hello there", "required")
    (call,) = required.choices[0].message.tool_calls
    assert required.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "hello there"}

    named = await ask("what is 6*7 in Europe/Paris?", {"type": "function", "function": {"name": "clock"}})
    (forced,) = named.choices[0].message.tool_calls
    assert forced.function.name == "clock" and json.loads(forced.function.arguments) == {"timezone": "Europe/Paris"}


async def test_streamed_tool_calls_assemble_in_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model=MODEL, messages=user("what is 2+3 and what time is it?"), tools=TOOLS, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    async for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = calls.setdefault(delta_call.index, {"name": "", "arguments": ""})
            if delta_call.function and delta_call.function.name:
                slot["name"] = delta_call.function.name
            if delta_call.function and delta_call.function.arguments:
                slot["arguments"] += delta_call.function.arguments
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("calculator", {"expression": "2+3"}),
        ("clock", {"timezone": "UTC"}),
    ]


async def test_usage_is_streamed_only_when_asked(sdk: openai.AsyncOpenAI) -> None:
    plain = await sdk.chat.completions.create(model=MODEL, messages=user("hello"), stream=True)
    assert [chunk.usage async for chunk in plain if chunk.usage is not None] == []

    asked = await sdk.chat.completions.create(
        model=MODEL, messages=user("hello"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in asked]
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == sum(1 for c in body if c.choices and c.choices[0].delta.content)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


async def test_n_choices_and_stop_sequences(sdk: openai.AsyncOpenAI) -> None:
    one = await sdk.chat.completions.create(model=MODEL, messages=user("hello"))
    three = await sdk.chat.completions.create(model=MODEL, messages=user("hello"), n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.message.content for c in three.choices} == {one.choices[0].message.content}
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens

    stopped = await sdk.chat.completions.create(model=MODEL, messages=user("hello"), stop=["message", "zzz"])
    assert stopped.choices[0].message.content == "[holdfast-demo] I received 1 "
    assert stopped.choices[0].finish_reason == "stop"


async def test_models_retrieve_and_typed_not_found(sdk: openai.AsyncOpenAI) -> None:
    card = await sdk.models.retrieve(MODEL)
    assert card.id == MODEL and card.object == "model"
    with pytest.raises(openai.NotFoundError) as missing_model:
        await sdk.models.retrieve("gpt-nonexistent-9")
    assert missing_model.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as missing_chat:
        await sdk.chat.completions.create(model="gpt-nonexistent-9", messages=user("hi"))
    assert missing_chat.value.code == "model_not_found" and "gpt-nonexistent-9" in missing_chat.value.message


async def test_bad_parameters_are_typed_bad_requests_naming_the_parameter(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as hot:
        await sdk.chat.completions.create(model=MODEL, messages=user("hi"), temperature="hot")  # type: ignore[arg-type]
    assert hot.value.param == "temperature" and hot.value.code == "invalid_type"
    with pytest.raises(openai.BadRequestError) as negative:
        await sdk.chat.completions.create(model=MODEL, messages=user("hi"), max_tokens=-1)
    assert negative.value.param == "max_tokens"


async def test_content_blocks_are_accepted_and_read(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [{"type": "text", "text": "what is 6*7?"}]}], tools=TOOLS
    )
    (call,) = reply.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"expression": "6*7"}


async def test_embeddings_float_base64_and_shortened(sdk: openai.AsyncOpenAI) -> None:
    floats = await sdk.embeddings.create(model="holdfast-demo-embed", input="the cat sat", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(demo_model.embed("the cat sat"))
    packed = await sdk.embeddings.create(model="holdfast-demo-embed", input=["the cat sat", "dogs"])  # base64
    assert packed.data[1].embedding == pytest.approx(demo_model.embed("dogs"), abs=1e-6)
    short = await sdk.embeddings.create(
        model="holdfast-demo-embed", input="the cat sat", dimensions=8, encoding_format="float"
    )
    vector = short.data[0].embedding
    assert len(vector) == 8 and math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-6)
    with pytest.raises(openai.NotFoundError):
        await sdk.embeddings.create(model="text-embedding-nonexistent", input="x")
