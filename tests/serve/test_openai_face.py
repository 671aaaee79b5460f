"""The OpenAI-compatible face driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from runtime.demo.admin import DemoAdmin
from tests.support.serve import ServerThread

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


@pytest.fixture
async def sdk(server: ServerThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused-on-loopback", max_retries=0) as c:
        yield c


async def test_models_lists_holdfast_and_every_upstream_model(sdk: openai.AsyncOpenAI) -> None:
    names = [m.id async for m in sdk.models.list()]
    # The configured model first, then the rest of what the demo server lists.
    assert names == ["holdfast", "holdfast/holdfast-demo", "holdfast/holdfast-demo-embed"]
    assert (await sdk.models.retrieve("holdfast")).id == "holdfast"
    assert (await sdk.models.retrieve("holdfast/holdfast-demo-embed")).id == "holdfast/holdfast-demo-embed"
    for unknown in ("gpt-4o", "holdfast/gpt-4o", "holdfast/"):
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.models.retrieve(unknown)
        assert missing.value.code == "model_not_found"


async def test_holdfast_slash_model_runs_that_turn_with_that_upstream_model(
    serve: Callable[..., ServerThread],
) -> None:
    # The configured model is the demo's embedding model, which refuses chat: a turn that answers
    # was run with the model the request named.
    server = serve(llm={"model": "holdfast-demo-embed"})
    async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0) as sdk:
        asked = sdk.chat.completions.create(
            model="holdfast/holdfast-demo", messages=[{"role": "user", "content": "which model are you?"}]
        )
        configured = sdk.chat.completions.create(model="holdfast", messages=[{"role": "user", "content": "and you?"}])
        # Concurrently: one request's model never leaks into another's.
        answered, refused = await asyncio.gather(asked, configured, return_exceptions=True)
        assert isinstance(answered, ChatCompletion), answered
        assert answered.model == "holdfast/holdfast-demo"
        assert (answered.choices[0].message.content or "").startswith("[holdfast-demo]")
        assert isinstance(refused, openai.InternalServerError)
        assert "holdfast-demo-embed" in str(refused)

        stream = await sdk.chat.completions.create(
            model="holdfast/holdfast-demo", messages=[{"role": "user", "content": "stream it"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert {c.model for c in chunks} == {"holdfast/holdfast-demo"}
        assert "stream it" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_an_unknown_upstream_model_is_openais_model_not_found(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="holdfast/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404
    assert missing.value.code == "model_not_found"
    assert missing.value.param == "model"
    assert "holdfast/gpt-4o" in missing.value.message


async def test_models_with_the_upstream_down_still_list_holdfast_and_the_configured_model(
    serve: Callable[..., ServerThread], demo_admin: DemoAdmin
) -> None:
    server = serve()
    await demo_admin.set_faults(down=True)
    async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0) as sdk:
        assert [m.id async for m in sdk.models.list()] == ["holdfast", "holdfast/holdfast-demo"]


async def test_chat_completions_non_streaming_is_a_turn_with_memory_of_the_user(
    sdk: openai.AsyncOpenAI, client: httpx.AsyncClient
) -> None:
    first = await sdk.chat.completions.create(
        model="holdfast", messages=[{"role": "user", "content": "my name is Ada"}], user="ada"
    )
    assert first.object == "chat.completion"
    assert "my name is Ada" in (first.choices[0].message.content or "")
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None and first.usage.total_tokens > 0
    raw = await sdk.chat.completions.with_raw_response.create(
        model="holdfast", messages=[{"role": "user", "content": "what is my name?"}], user="ada"
    )
    conversation = raw.headers["x-holdfast-conversation"]
    # Both requests with user="ada" went into one conversation, kept by Holdfast.
    stored = (await client.get(f"/v1/conversations/{conversation}/messages")).json()["messages"]
    assert [m["content"] for m in stored if m["role"] == "user"] == ["my name is Ada", "what is my name?"]


async def test_chat_completions_streaming_in_the_openai_chunk_format(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="holdfast/holdfast-demo",
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = [], None, None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "stream this please" in "".join(text)
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


async def test_sdk_errors_are_typed(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "holdfast" in str(missing.value)
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(model="holdfast", messages=[{"role": "system", "content": "no user"}])
    with pytest.raises(openai.UnprocessableEntityError):
        await sdk.chat.completions.create(model="holdfast", messages=[])


async def test_more_than_one_choice_is_refused_not_silently_answered_with_one(sdk: openai.AsyncOpenAI) -> None:
    # Issue 18 break test: n=2 answered one choice with 200, so a client looping over its n
    # choices lost one without a word. One request is one turn: n other than 1 is OpenAI's 400.
    for n, stream in ((2, False), (3, True), (0, False)):
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.chat.completions.create(
                model="holdfast", messages=[{"role": "user", "content": "two please"}], n=n, stream=stream
            )
        assert refused.value.status_code == 400
        assert refused.value.param == "n"
        assert f"n={n} is not supported" in refused.value.message
    one = await sdk.chat.completions.create(model="holdfast", messages=[{"role": "user", "content": "one"}], n=1)
    assert len(one.choices) == 1
    assert 'You said: "one"' in (one.choices[0].message.content or "")
