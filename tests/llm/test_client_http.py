"""LLMClient against HTTP edge cases (respx): every status class, Retry-After, malformed SSE,
split and parallel tool-call deltas, streams cut mid-way, usage counting, fallbacks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import respx

from runtime.config import LLMConfig
from runtime.core.errors import AuthenticationError, AuthorizationError, ErrorType, NotFoundError, ValidationError
from runtime.llm.client import LLMClient
from runtime.llm.stream_events import (
    FallbackReply,
    Finish,
    StreamInterrupted,
    TextDelta,
    ToolCallError,
    ToolCallReady,
    Usage,
)
from runtime.resilience import Resilience

BASE = "http://llm.test/v1"
HELLO = [{"role": "user", "content": "hello"}]
CALC = [{"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": choices, **extra}


def sse(*chunks: dict[str, Any] | str, done: bool = True) -> bytes:
    parts = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def text_stream(*words: str, usage: dict[str, int] | None = None) -> bytes:
    chunks: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": w}) for w in words]
    chunks.append(chunk({}, "stop"))
    if usage:
        chunks.append(chunk(usage=usage))
    return sse(*chunks)


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


class CutStream(httpx.AsyncByteStream):
    """Sends ``body`` and then fails the read, as a dropped TCP connection does."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


async def collect(
    client: LLMClient, messages: list[dict[str, Any]] = HELLO, tools: Any = None, **kwargs: Any
) -> list[Any]:
    async with aclosing(client.stream_chat(messages, tools, **kwargs)) as events:
        return [event async for event in events]


@pytest.fixture
def client(make_resilience: Callable[..., Resilience], make_client: Callable[..., LLMClient]) -> LLMClient:
    return make_client(make_resilience(), BASE, http_client=httpx.AsyncClient(), count_tokens=lambda t: len(t.split()))


# ------------------------------------------------------------ status classes


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_rejected_requests_are_validation_errors_not_retried_not_counted(status: int, client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(status, json={"error": {"message": "bad model"}})
        with pytest.raises(ValidationError) as info:
            await collect(client)
    assert info.value.error_type is ErrorType.VALIDATION and info.value.status_code == status
    assert "bad model" in info.value.message
    assert route.call_count == 1
    assert client.guard.breaker.snapshot().failure_count == 0


async def test_unknown_model_is_not_found_not_retried_not_counted_and_names_the_setting(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(404, json={"error": {"message": "model 'x' not found"}})
        with pytest.raises(NotFoundError) as info:
            await collect(client)
    assert info.value.status_code == 404 and "model 'x' not found" in info.value.message
    assert "[llm].model" in info.value.user_message()
    assert route.call_count == 1
    assert client.guard.breaker.snapshot().failure_count == 0


@pytest.mark.parametrize(("status", "kind"), [(401, AuthenticationError), (403, AuthorizationError)])
async def test_auth_failures_are_not_retried_and_hint_at_the_api_key(
    status: int, kind: type[Exception], client: LLMClient
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(status, json={"error": {"message": "invalid key"}})
        with pytest.raises(kind) as info:
            await collect(client)
    assert route.call_count == 1
    assert "$OPENAI_API_KEY" in info.value.user_message() and "invalid key" in info.value.user_message()
    assert client.guard.breaker.snapshot().failure_count == 0


async def test_server_errors_are_retried_then_succeed(client: LLMClient, sleeps: Any) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [httpx.Response(502), httpx.Response(503), sse_response(text_stream("ok"))]
        events = await collect(client)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]
    assert route.call_count == 3 and len(sleeps.delays) == 2


async def test_rate_limit_waits_at_least_retry_after(client: LLMClient, sleeps: Any) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow"}}),
            sse_response(text_stream("fine")),
        ]
        events = await collect(client)
    assert route.call_count == 2
    assert sleeps.delays == [7.0]  # the policy's own delay is 0.01 s; the server's hint wins
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"


async def test_retry_after_beyond_the_cap_gives_up_at_once(make_resilience: Any, make_client: Any, sleeps: Any) -> None:
    client = make_client(make_resilience(retry_after_cap=30.0), BASE, http_client=httpx.AsyncClient())
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(429, headers={"retry-after": "3600"})
        events = await collect(client)
    assert route.call_count == 1 and sleeps.delays == []
    assert isinstance(events[0], FallbackReply) and "429" in events[0].error


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_connection_errors_and_timeouts_are_retried_up_to_max_attempts(
    failure: Exception, client: LLMClient, sleeps: Any
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(side_effect=failure)
        with pytest.raises(Exception) as info:
            await collect(client, use_fallback=False)
    assert route.call_count == 3  # 1 + max_retries, the SDK adds none
    assert info.value.retryable  # type: ignore[attr-defined]


# ------------------------------------------------------------ stream contents


async def test_tool_call_deltas_split_across_chunks_including_parallel_calls(client: LLMClient) -> None:
    body = sse(
        chunk({"role": "assistant", "content": None}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "calculator", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"expr'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "clock", "arguments": '{"time'},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ession": "6*7"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'zone": "UTC"}'}}]}),
        chunk({}, "tool_calls"),
        chunk(usage={"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(body))
        events = await collect(client, tools=CALC)
    calls = [e for e in events if isinstance(e, ToolCallReady)]
    assert [(c.call.id, c.name, c.arguments) for c in calls] == [
        ("call_a", "calculator", {"expression": "6*7"}),
        ("call_b", "clock", {"timezone": "UTC"}),
    ]
    assert Usage(11, 5) in events
    assert events[-1] == Finish("tool_calls", "m")


async def test_malformed_tool_arguments_are_an_event_not_a_crash(client: LLMClient) -> None:
    body = sse(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "calculator", "arguments": '{"expression": '},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(body))
        events = await collect(client, tools=CALC)
    (error,) = [e for e in events if isinstance(e, ToolCallError)]
    assert error.call.name == "calculator" and "not valid JSON" in error.error
    assert isinstance(events[-1], Finish)


async def test_usage_is_counted_with_the_injected_counter_when_the_endpoint_sends_none(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(return_value=sse_response(text_stream("one ", "two ", "three")))
        events = await collect(client, [{"role": "user", "content": "a b c"}])
    sent = json.loads(route.calls.last.request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    (usage,) = [e for e in events if isinstance(e, Usage)]
    assert usage == Usage(prompt_tokens=3 + 4, completion_tokens=3, estimated=True)


async def test_malformed_sse_before_any_token_is_retried(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            sse_response(sse('{"choices": [{"delta": {"content"', done=False)),
            sse_response(text_stream("recovered")),
        ]
        events = await collect(client)
    assert route.call_count == 2
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["recovered"]


async def test_malformed_sse_after_tokens_keeps_the_partial_text_and_is_not_retried(client: LLMClient) -> None:
    body = sse(chunk({"content": "Hello "}), chunk({"content": "wor"}), '{"choices": [', done=False)
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(return_value=sse_response(body))
        events = await collect(client)
    assert route.call_count == 1
    assert events[-1] == StreamInterrupted("Hello wor", events[-1].error, "external_service_error")
    assert "malformed" in events[-1].error


async def test_stream_cut_after_n_tokens_is_marked_interrupted(client: LLMClient) -> None:
    body = sse(chunk({"content": "one "}), chunk({"content": "two "}), done=False)
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=CutStream(body))
        )
        events = await collect(client)
    assert route.call_count == 1
    assert [type(e).__name__ for e in events] == ["TextDelta", "TextDelta", "StreamInterrupted"]
    assert events[-1].partial_text == "one two "


async def test_stream_that_ends_without_finish_is_not_a_complete_answer(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(sse(chunk({"content": "half"}), done=False)))
        events = await collect(client)
    assert isinstance(events[-1], StreamInterrupted) and "ended before" in events[-1].error


# ------------------------------------------------------------ fallbacks


async def test_identical_prompt_gets_the_cached_answer_when_the_llm_is_down(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(return_value=sse_response(text_stream("Paris ", "it is.")))
        await collect(client)
        route.mock(side_effect=httpx.ConnectError("refused"))
        same = await collect(client)
        other = await collect(client, [{"role": "user", "content": "something else"}])
    assert same[0] == FallbackReply("Paris it is.", "cache", same[0].error, True, same[0].details)
    assert same[-1] == Finish("fallback", "")
    assert isinstance(other[0], FallbackReply) and other[0].source == "degraded"


async def test_degraded_reply_says_what_is_down_since_when_and_that_the_message_is_kept(
    make_resilience: Any, make_client: Any
) -> None:
    client = make_client(make_resilience(), BASE, http_client=httpx.AsyncClient(), wall_clock=lambda: 1_700_000_000.0)
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
        (reply, finish) = await collect(client)
    assert isinstance(reply, FallbackReply) and reply.source == "degraded"
    since = time.strftime("%H:%M:%S", time.localtime(1_700_000_000.0))
    assert f"The language model at {BASE} is unavailable since {since}" in reply.text
    assert "unreachable" in reply.text and "/retry" in reply.text
    assert reply.details["down_since"] == 1_700_000_000.0
    assert finish.reason == "fallback"


async def test_complete_uses_the_same_cache(client: LLMClient) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fine."}, "finish_reason": "stop"}],
    }
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(200, json=body)
        first = await client.complete(HELLO)
        route.respond(500)
        second = await client.complete(HELLO)
    assert (first.text, first.source, first.usage and first.usage.estimated) == ("Fine.", "primary", True)
    assert (second.text, second.source, second.finish_reason) == ("Fine.", "cache", "fallback")


# ------------------------------------------------------------ tools in the prompt


async def test_endpoints_without_tools_get_them_in_the_system_prompt(make_resilience: Any, make_client: Any) -> None:
    config = LLMConfig(preset="llamacpp", base_url=BASE)
    client = make_client(make_resilience(), BASE, config=config, http_client=httpx.AsyncClient())
    reply = '{"tool": "calculator", "arguments": {"expression": "2+2"}}'
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(return_value=sse_response(text_stream(reply[:10], reply[10:])))
        events = await collect(client, [{"role": "system", "content": "Be nice."}, *HELLO], tools=CALC)
    sent = json.loads(route.calls.last.request.content)
    assert "tools" not in sent
    assert sent["messages"][0]["content"].startswith("Be nice.\n\nAvailable tools:\n- calculator")
    assert not [e for e in events if isinstance(e, TextDelta)]  # the JSON was held back, not shown
    (call,) = [e for e in events if isinstance(e, ToolCallReady)]
    assert call.arguments == {"expression": "2+2"}
    assert events[-1].reason == "tool_calls"


async def test_endpoints_without_tools_still_stream_plain_answers(make_resilience: Any, make_client: Any) -> None:
    config = LLMConfig(preset="llamacpp", base_url=BASE)
    client = make_client(make_resilience(), BASE, config=config, http_client=httpx.AsyncClient())
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(text_stream(" ", "Four", ".")))
        events = await collect(client, tools=CALC)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == " Four."
    assert events[-1].reason == "stop"


async def test_sdk_sends_no_retries_of_its_own(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/models").respond(200, json={"object": "list", "data": [{"id": "a", "object": "model"}]})
        assert await client.list_models() == ["a"]
    assert route.calls.last.request.headers.get("x-stainless-retry-count") == "0"


async def test_a_server_that_echoes_the_refused_key_never_shows_it(client: LLMClient) -> None:
    leaked = "sk-live-0123456789abcdefghijklmnop"
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").respond(401, json={"error": {"message": f"Incorrect API key: {leaked}"}})
        with pytest.raises(AuthenticationError) as info:
            await collect(client)
    shown = info.value.user_message()
    assert leaked not in shown and "Incorrect API key" in shown
