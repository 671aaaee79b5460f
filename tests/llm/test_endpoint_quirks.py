"""The client against shapes of real endpoints the demo profiles do not make (respx), each from a
public bug report against another client: tool calls that share an index or repeat an id,
arguments as objects, content blocks, reasoning that outlasts the timeout, streams that only
keep the connection alive, endpoints that reject ``tools``, errors inside a 200 stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import respx

from runtime.config import LLMConfig, ResilienceConfig, ServiceResilience
from runtime.core.errors import OperationTimeoutError
from runtime.llm.client import LLMClient
from runtime.llm.prompt_tools import INSTRUCTION
from runtime.llm.stream_events import (
    Finish,
    Notice,
    ReasoningDelta,
    StreamInterrupted,
    TextDelta,
    ToolCallReady,
    Usage,
)
from runtime.resilience import Resilience
from tests.support.sse import CALC, chunk, sse

BASE = "http://quirks.test/v1"
ASK = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "what is 2+3 and 7*6?"}]


def stream(body: bytes | httpx.AsyncByteStream) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)


def call(index: int | None, call_id: str | None, name: str | None, arguments: object) -> dict[str, Any]:
    entry: dict[str, Any] = {"function": {"arguments": arguments}}
    if index is not None:
        entry["index"] = index
    if call_id is not None:
        entry["id"] = call_id
        entry["type"] = "function"
    if name is not None:
        entry["function"]["name"] = name
    return entry


async def collect(client: LLMClient, messages: list[dict[str, Any]] = ASK, tools: Any = CALC, **kw: Any) -> list[Any]:
    async with aclosing(client.stream_chat(messages, tools, **kw)) as events:
        return [event async for event in events]


def ready(events: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.call.id, e.name, e.arguments) for e in events if isinstance(e, ToolCallReady)]


def real_time(**settings: Any) -> Resilience:
    """Real clock and sleep: these cases are about timeouts measured by the event loop."""
    base: dict[str, Any] = dict(max_attempts=3, initial_delay=0.01, max_delay=0.02, jitter=False)
    base.update(settings)
    return Resilience(ResilienceConfig(llm=ServiceResilience(**base)))


@pytest.fixture
def client(make_resilience: Callable[..., Resilience], make_client: Callable[..., LLMClient]) -> LLMClient:
    return make_client(make_resilience(), BASE, http_client=httpx.AsyncClient())


# ---------------------------------------------------------------- case 1 and 2: tool-call identity


async def test_two_calls_at_index_0_with_different_ids_are_two_calls(client: LLMClient) -> None:
    """Case 1 (llama.cpp): a new id starts a new call whatever the index says."""
    body = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call(0, "call_a", "calculator", "")]}),
        chunk({"tool_calls": [call(0, None, None, '{"expression":')]}),
        chunk({"tool_calls": [call(0, None, None, '"2+3"}')]}),
        chunk({"tool_calls": [call(0, "call_b", "calculator", '{"expression": "7*6"}')]}),
        chunk({}, "tool_calls"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=stream(body))
        events = await collect(client)
    assert ready(events) == [
        ("call_a", "calculator", {"expression": "2+3"}),
        ("call_b", "calculator", {"expression": "7*6"}),
    ]
    assert events[-1] == Finish("tool_calls", "m")


async def test_arguments_sent_as_an_object_are_a_call_not_a_crash(client: LLMClient) -> None:
    """Case 2 (llama.cpp): ``arguments`` as a JSON object, streamed and in a whole reply."""
    body = sse(chunk({"tool_calls": [call(0, "call_a", "calculator", {"expression": "2+3"})]}), chunk({}, "tool_calls"))
    whole = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "calculator", "arguments": {"expression": "2+3"}},
                        }
                    ],
                },
            }
        ],
    }
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [stream(body), httpx.Response(200, json=whole)]
        events = await collect(client)
        completion = await client.complete(ASK, CALC)
    assert ready(events) == [("call_a", "calculator", {"expression": "2+3"})]
    assert [(c.call.id, c.arguments) for c in completion.tool_calls] == [("call_a", {"expression": "2+3"})]
    assert completion.tool_calls[0].call.arguments == '{"expression": "2+3"}'  # stored and sent back as JSON text


async def test_an_id_repeated_on_every_fragment_is_one_call(client: LLMClient) -> None:
    body = sse(
        chunk({"tool_calls": [call(0, "call_a", "calculator", '{"expr')]}),
        chunk({"tool_calls": [call(0, "call_a", None, 'ession": "1+1"}')]}),
        chunk({}, "tool_calls"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=stream(body))
        events = await collect(client)
    assert ready(events) == [("call_a", "calculator", {"expression": "1+1"})]


async def test_missing_and_repeated_ids_are_made_unique(client: LLMClient) -> None:
    body = sse(
        chunk({"tool_calls": [call(None, None, "calculator", '{"expression": "1+1"}')]}),
        chunk({"tool_calls": [call(None, "", "calculator", '{"expression": "2+2"}')]}),
        chunk({"tool_calls": [call(None, "same", "calculator", '{"expression": "3+3"}')]}),
        chunk({"tool_calls": [call(None, "same", "calculator", '{"expression": "4+4"}')]}),
        chunk({}, "stop"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=stream(body))
        events = await collect(client)
    calls = ready(events)
    assert [args["expression"] for _, _, args in calls] == ["1+1", "2+2", "3+3", "4+4"]
    ids = [i for i, _, _ in calls]
    assert len(set(ids)) == 4 and ids[2:] == ["same", "same_2"] and all(ids)
    assert events[-1].reason == "tool_calls"  # Ollama says "stop" after tool calls


# ---------------------------------------------------------------- case 3: content forms


async def test_content_as_typed_blocks_null_and_reasoning(client: LLMClient) -> None:
    body = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm."}]}]}),
        chunk({"reasoning": " Fine."}),
        chunk({"content": [{"type": "text", "text": "Hello"}, {"type": "image_url", "image_url": {"url": "x"}}]}),
        chunk({"content": [{"type": "text", "text": ", world"}]}),
        chunk({"content": None}, "stop"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=stream(body))
        events = await collect(client, tools=None)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", ", world"]
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["Hmm.", " Fine."]
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.estimated and usage.reasoning_tokens > 0


async def test_an_error_object_in_a_200_stream_keeps_the_partial(client: LLMClient) -> None:
    body = sse(
        chunk({"content": "Half an "}),
        chunk({"content": "answer"}),
        {"error": {"message": "upstream provider died", "code": 502}, "choices": []},
    )
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(return_value=stream(body))
        events = await collect(client, tools=None)
    interrupted = events[-1]
    assert isinstance(interrupted, StreamInterrupted)
    assert interrupted.partial_text == "Half an answer" and interrupted.finish_reason == "error"
    assert "upstream provider died" in interrupted.error
    assert route.call_count == 1  # text was shown: not resent


# ---------------------------------------------------------------- case 5 and 8: timeouts and deadlines


class Paced(httpx.AsyncByteStream):
    """Sends ``pieces`` one every ``interval`` seconds, as a slow server does (``forever``:
    repeats the last piece until the client goes away)."""

    def __init__(self, pieces: list[bytes], interval: float, *, forever: bool = False) -> None:
        self.pieces, self.interval, self.forever = pieces, interval, forever

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
            await asyncio.sleep(self.interval)
        while self.forever:
            yield self.pieces[-1]
            await asyncio.sleep(self.interval)


def data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def test_reasoning_longer_than_the_timeout_is_progress_not_a_timeout(
    make_client: Callable[..., LLMClient],
) -> None:
    """Case 5: reasoning every 0.05 s for 0.6 s against a 0.25 s timeout: one request, an answer."""
    client = make_client(real_time(timeout=0.25), BASE, http_client=httpx.AsyncClient())
    thinking = [data(chunk({"reasoning_content": f"step {i}. "})) for i in range(12)]
    answer = [data(chunk({"content": "Five."})), data(chunk({}, "stop")), b"data: [DONE]\n\n"]
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(return_value=stream(Paced(thinking + answer, 0.05)))
        events = await collect(client, tools=None)
    assert route.call_count == 1
    assert len([e for e in events if isinstance(e, ReasoningDelta)]) == 12
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Five."]
    assert events[-1] == Finish("stop", "m")


async def test_keep_alive_comments_do_not_outlive_the_deadline(make_client: Callable[..., LLMClient]) -> None:
    """Case 8: a server sending only ``: keep-alive`` comments ends the call at the deadline
    (0.6 s here), though each attempt's timeout (10 s) is far longer."""
    client = make_client(real_time(timeout=10.0, deadline=0.6), BASE, http_client=httpx.AsyncClient())
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=stream(Paced([b": keep-alive\n\n"], 0.02, forever=True))
        )
        started = time.monotonic()
        with pytest.raises(OperationTimeoutError) as info:
            await collect(client, tools=None, use_fallback=False)
        took = time.monotonic() - started
    assert 0.5 < took < 2.0
    assert "deadline of 0.6s" in info.value.message and not info.value.retryable
    assert route.call_count == 1


async def test_a_retry_gets_only_the_time_left(make_client: Callable[..., LLMClient]) -> None:
    """Every attempt's timeout is cut to what is left of the deadline: a 503, then a server that
    keeps the stream open with comments, still ends by the 0.6 s deadline."""
    client = make_client(real_time(timeout=10.0, deadline=0.6), BASE, http_client=httpx.AsyncClient())
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [httpx.Response(503), stream(Paced([b": keep-alive\n\n"], 0.02, forever=True))]
        started = time.monotonic()
        with pytest.raises(OperationTimeoutError):
            await collect(client, tools=None, use_fallback=False)
    assert time.monotonic() - started < 2.0 and route.call_count == 2


# ---------------------------------------------------------------- case 6: no stream


async def test_a_json_reply_to_a_stream_request_is_the_whole_answer(client: LLMClient) -> None:
    whole = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "All at once."}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(200, json=whole)
        first = await collect(client, tools=None)
        second = await collect(client, tools=None)
    assert [type(e) for e in first] == [Notice, TextDelta, Usage, Finish]
    assert first[0].kind == "no_stream" and first[1].text == "All at once."
    assert first[2] == Usage(5, 3)
    assert [type(e) for e in second] == [TextDelta, Usage, Finish]  # remembered: said once
    sent = [json.loads(c.request.content) for c in route.calls]
    assert sent[0]["stream"] is True and "stream" not in sent[1]


# ---------------------------------------------------------------- case 9: tools rejected


async def test_an_endpoint_that_rejects_tools_gets_them_in_the_prompt(client: LLMClient) -> None:
    refused = httpx.Response(
        400, json={"error": {"message": "registry.ollama.ai/library/gemma:2b does not support tools"}}
    )
    asked = sse(
        chunk({"content": '```json\n{"tool_calls": [{"tool": "calculator", "arguments": {"expression": "2+3"}}, '}),
        chunk({"content": '{"tool": "calculator", "arguments": {"expression": "7*6"}}]}\n```'}),
        chunk({}, "stop"),
    )
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [refused, stream(asked)]
        events = await collect(client)
    notices = [e for e in events if isinstance(e, Notice)]
    assert [n.kind for n in notices] == ["prompt_tools"]
    assert [(name, args) for _, name, args in ready(events)] == [
        ("calculator", {"expression": "2+3"}),
        ("calculator", {"expression": "7*6"}),
    ]
    assert not [e for e in events if isinstance(e, TextDelta)]  # the JSON request is never shown
    resent = json.loads(route.calls[1].request.content)
    assert "tools" not in resent
    assert resent["messages"][0]["content"].startswith("You are terse.\n\nAvailable tools:\n- calculator:")
    assert INSTRUCTION in resent["messages"][0]["content"]
    assert client.tools_supported is False and events[-1].reason == "tool_calls"


async def test_prompt_tools_send_results_back_as_text(client: LLMClient) -> None:
    client.tools_supported = False
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "2+3"}'},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "7*6"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "a", "name": "calculator", "content": "2+3 = 5"},
        {"role": "tool", "tool_call_id": "b", "name": "calculator", "content": "7*6 = 42"},
    ]
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=stream(sse(chunk({"content": "5 and 42."}), chunk({}, "stop")))
        )
        events = await collect(client, history)
    sent = json.loads(route.calls[0].request.content)["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]  # roles alternate
    assert json.loads(sent[2]["content"])["tool_calls"][1] == {"tool": "calculator", "arguments": {"expression": "7*6"}}
    assert sent[3]["content"] == "[tool result calculator]: 2+3 = 5\n[tool result calculator]: 7*6 = 42"
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["5 and 42."]


# ---------------------------------------------------------------- case 12: error text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"detail": "Model is loading"}, "answered HTTP 503: Model is loading"),
        ("", "answered HTTP 503"),
        ("HTTP 503", "answered HTTP 503"),
    ],
)
async def test_error_text_names_the_status_once(
    body: Any, expected: str, make_client: Callable[..., LLMClient], make_resilience: Callable[..., Resilience]
) -> None:
    client = make_client(
        make_resilience(max_attempts=1), BASE, http_client=httpx.AsyncClient(), config=LLMConfig(base_url=BASE)
    )
    response = httpx.Response(503, json=body) if isinstance(body, dict) else httpx.Response(503, text=body)
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=response)
        with pytest.raises(Exception) as info:
            await collect(client, tools=None, use_fallback=False)
    message = str(info.value)
    assert message.endswith(expected) and message.count("503") == 1


async def test_stream_true_accepts_a_json_reply_but_keeps_asking_for_streams(
    make_client: Callable[..., LLMClient], make_resilience: Callable[..., Resilience]
) -> None:
    client = make_client(
        make_resilience(), BASE, http_client=httpx.AsyncClient(), config=LLMConfig(base_url=BASE, stream=True)
    )
    whole = {"model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "Whole."}}]}
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").respond(200, json=whole)
        for _ in range(2):
            events = await collect(client, tools=None)
            assert [type(e) for e in events] == [TextDelta, Usage, Finish] and events[1].estimated
    assert [json.loads(c.request.content)["stream"] for c in route.calls] == [True, True]


@pytest.mark.parametrize("cookies", [None, {"session": "s1"}])
async def test_the_stream_request_carries_the_http_clients_headers_and_cookies(
    cookies: dict[str, str] | None, make_client: Callable[..., LLMClient], make_resilience: Callable[..., Resilience]
) -> None:
    """The stream request is built from parts merged once (for speed); a gateway's default
    headers given on the http client, and its cookie jar, still go out with it."""
    http = httpx.AsyncClient(headers={"x-org": "acme"}, cookies=cookies)
    client = make_client(make_resilience(), BASE, http_client=http, config=LLMConfig(base_url=BASE, api_key="k1"))
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=stream(sse(chunk({"content": "ok"}), chunk({}, "stop")))
        )
        await collect(client, tools=None)
    sent = route.calls[0].request.headers
    assert sent["x-org"] == "acme" and sent["authorization"] == "Bearer k1"
    assert sent["accept"] == "text/event-stream" and sent["content-type"] == "application/json"
    assert sent.get("cookie") == ("session=s1" if cookies else None)
