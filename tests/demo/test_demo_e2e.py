"""End to end over real loopback HTTP: the official openai client and LLMClient against the demo
server child process, every injected fault, cancellation, and the breaker across a kill/restart."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Any

import httpx
import openai
import pytest

from runtime.core.errors import ValidationError
from runtime.demo import model as demo_model
from runtime.demo.admin import DemoAdmin
from runtime.demo.launcher import DemoLLMServer
from runtime.llm.client import LLMClient
from runtime.llm.health import llm_health_check
from runtime.llm.stream_events import (
    FallbackReply,
    Finish,
    StreamInterrupted,
    TextDelta,
    ToolCallError,
    ToolCallReady,
    Usage,
)
from runtime.resilience import HealthStatus
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e

CALC = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "arithmetic",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]
HELLO = [{"role": "user", "content": "hello there"}]


async def collect(
    client: LLMClient, messages: list[dict[str, Any]] = HELLO, tools: Any = None, **kwargs: Any
) -> list[Any]:
    async with aclosing(client.stream_chat(messages, tools, **kwargs)) as events:
        return [event async for event in events]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.fixture
async def admin(demo_url: str) -> Any:
    async with DemoAdmin(demo_url) as adm:
        yield adm


@pytest.fixture
def sdk(demo_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=demo_url, api_key="unused", max_retries=0, http_client=httpx.AsyncClient())


# ------------------------------------------------------------ the official client


async def test_official_client_streams_the_same_reply_as_the_plain_call_with_usage(sdk: openai.AsyncOpenAI) -> None:
    plain = await sdk.chat.completions.create(model="holdfast-demo", messages=HELLO)
    stream = await sdk.chat.completions.create(
        model="holdfast-demo", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    pieces, usage, models = [], None, set()
    async for part in stream:
        models.add(part.model)
        if part.choices and part.choices[0].delta.content:
            pieces.append(part.choices[0].delta.content)
        if part.usage:
            usage = part.usage
    assert "".join(pieces) == plain.choices[0].message.content
    assert plain.choices[0].message.content.startswith("[holdfast-demo] I received 1 message (1 user).")
    assert models == {"holdfast-demo"} and plain.model == "holdfast-demo"
    assert usage is not None and usage.completion_tokens == len(pieces) == plain.usage.completion_tokens


async def test_official_client_gets_tool_calls_and_embeddings(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.chat.completions.create(
        model="holdfast-demo", messages=[{"role": "user", "content": "what is 6*7?"}], tools=CALC
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "6*7"}
    vectors = await sdk.embeddings.create(model="holdfast-demo-embed", input=["the cat sat", "dogs"])  # base64
    assert [round(v, 5) for v in vectors.data[0].embedding] == [round(v, 5) for v in demo_model.embed("the cat sat")]
    models = await sdk.models.list()
    assert "holdfast-demo" in [m.id for m in models.data]


# ------------------------------------------------------------ LLMClient, healthy server


async def test_a_whole_tool_turn_through_llmclient(make_resilience: Any, make_client: Any, demo_url: str) -> None:
    client = make_client(make_resilience(), demo_url)
    ask = [{"role": "user", "content": "what is (2+3)*4?"}]
    first = await collect(client, ask, CALC)
    (call,) = [e for e in first if isinstance(e, ToolCallReady)]
    assert call.arguments == {"expression": "(2+3)*4"} and first[-1] == Finish("tool_calls", "holdfast-demo")
    usage = next(e for e in first if isinstance(e, Usage))
    assert not usage.estimated and usage.completion_tokens > 0
    follow = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call.call.to_openai()]},
        {"role": "tool", "tool_call_id": call.call.id, "content": "20"},
    ]
    second = await collect(client, follow, CALC)
    assert text_of(second) == '[holdfast-demo] The calculator returned "20".'
    assert await client.embed(["a", "b"]) == [demo_model.embed("a"), demo_model.embed("b")]


async def test_model_sees_recalled_memories(make_resilience: Any, make_client: Any, demo_url: str) -> None:
    client = make_client(make_resilience(), demo_url)
    messages = [
        {"role": "system", "content": "You are Holdfast.\n[Memory from 2024-06-01]: my sister is Ana"},
        {"role": "user", "content": "what is my sister called?"},
    ]
    text = text_of(await collect(client, messages))
    assert 'the relevant one (2024-06-01) says: "my sister is Ana"' in text


# ------------------------------------------------------------ injected faults


async def test_injected_errors_are_retried_until_success(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(fail_next=2, error_status=503)
    events = await collect(make_client(make_resilience(), demo_url))
    assert text_of(events).startswith("[holdfast-demo]")
    assert await admin.requests() == 3


async def test_attempts_never_exceed_one_plus_max_retries(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(fail_next=100)
    client = make_client(make_resilience(max_attempts=4), demo_url)
    events = await collect(client)
    assert isinstance(events[0], FallbackReply) and "HTTP 500" in events[0].error
    assert await admin.requests() == 4
    completion = await client.complete(HELLO)
    assert completion.source == "degraded"
    assert await admin.requests() == 8


async def test_rate_limit_is_honoured(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str, sleeps: Any
) -> None:
    await admin.set_faults(rate_limit_next=1, retry_after=2.5)
    events = await collect(make_client(make_resilience(), demo_url))
    assert sleeps.delays == [2.5]
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"


async def test_injected_client_error_is_not_retried(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(fail_next=1, error_status=422)
    with pytest.raises(ValidationError):
        await collect(make_client(make_resilience(), demo_url))
    assert await admin.requests() == 1


async def test_dropped_connection_keeps_the_shown_tokens(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(drop_after_tokens=3)
    events = await collect(make_client(make_resilience(), demo_url))
    assert isinstance(events[-1], StreamInterrupted)
    assert events[-1].partial_text == "[holdfast-demo] I received "
    assert await admin.requests() == 1  # tokens were shown: no retry


async def test_malformed_stream_is_retried_then_falls_back(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(malformed=True)
    events = await collect(make_client(make_resilience(), demo_url))
    assert isinstance(events[0], FallbackReply) and "malformed" in events[0].error
    assert await admin.requests() == 3


async def test_malformed_tool_arguments_reach_the_caller_as_an_error_event(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(malformed_tool_args=True)
    events = await collect(make_client(make_resilience(), demo_url), [{"role": "user", "content": "1+1"}], CALC)
    (error,) = [e for e in events if isinstance(e, ToolCallError)]
    assert error.call.name == "calculator" and "not valid JSON" in error.error


async def test_down_server_drops_connections_and_the_reply_degrades(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(down=True)
    events = await collect(make_client(make_resilience(), demo_url))
    assert isinstance(events[0], FallbackReply) and events[0].source == "degraded"
    assert "unreachable" in events[0].error or "connection" in events[0].error
    assert "/retry" in events[0].text
    assert await admin.requests() == 3


async def test_hang_and_latency_end_in_a_timeout(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    client = make_client(make_resilience(max_attempts=1, timeout=0.3), demo_url)
    await admin.set_faults(hang=True)
    events = await collect(client)
    assert isinstance(events[0], FallbackReply) and "did not answer" in events[0].error
    await admin.reset(latency=2.0)
    events = await collect(client, [{"role": "user", "content": "another prompt"}])
    assert isinstance(events[0], FallbackReply) and "did not answer" in events[0].error


async def test_cancelling_a_stream_closes_the_http_stream(
    make_resilience: Any, make_client: Any, admin: DemoAdmin, demo_url: str
) -> None:
    await admin.set_faults(tokens_per_second=20)
    client = make_client(make_resilience(), demo_url)
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(client.stream_chat(HELLO)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()  # the user pressed Esc
    with pytest.raises(asyncio.CancelledError):
        await task

    async def server_saw_it() -> bool:
        return (await admin.status())["streams_cancelled"] == 1

    await wait_for(server_saw_it, timeout=3.0, what="the server to count the cancelled stream")
    status = await admin.status()
    assert status["streams_completed"] == 0
    assert client.guard.breaker.snapshot().failure_count == 0  # a cancel is not the backend's fault


async def test_admin_rejects_unknown_faults(admin: DemoAdmin) -> None:
    with pytest.raises(ValidationError, match="unknown fault"):
        await admin.set_faults(meltdown=True)
    assert (await admin.faults())["down"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hang": "maybe"}, "fault hang must be true or false, got 'maybe'"),
        ({"down": 2}, "fault down must be true or false, got 2"),
        ({"drop_after_tokens": 1.7}, "fault drop_after_tokens must be a whole number, got 1.7"),
        ({"fail_next": "three"}, "fault fail_next must be a whole number, got 'three'"),
        ({"error_status": True}, "fault error_status must be a whole number, got True"),
        ({"latency": [1]}, "fault latency must be a number, got [1]"),
        ({"reset": "later"}, "reset must be true or false, got 'later'"),
    ],
)
async def test_admin_refuses_fault_values_of_the_wrong_kind(
    admin: DemoAdmin, change: dict[str, object], message: str
) -> None:
    await admin.set_faults(latency=0.25)
    with pytest.raises(ValidationError) as refused:
        await admin.set_faults(**change)
    assert refused.value.message == message
    assert (await admin.faults())["latency"] == 0.25  # nothing changed, nothing reset
    assert (await admin.set_faults(reset="no"))["latency"] == 0.25  # "no" does not reset (it used to)
    # The spellings flags and forms use are read as what they say.
    assert (await admin.set_faults(hang="off", down=0, fail_next="2", drop_after_tokens=3.0))["fail_next"] == 2
    assert (await admin.faults())["drop_after_tokens"] == 3


# ------------------------------------------------------------ breaker across kill/restart


@pytest.mark.slow
async def test_breaker_opens_when_the_server_dies_and_closes_when_it_returns(
    make_resilience: Any, make_client: Any, clock: Any, tmp_path: Any
) -> None:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log")
    server.start()
    try:
        client = make_client(make_resilience(max_attempts=1, failure_threshold=2, recovery_timeout=5.0), server.url)
        check = llm_health_check(client)
        healthy = await check()
        assert healthy.status is HealthStatus.HEALTHY and healthy.latency_ms is not None
        assert text_of(await collect(client)).startswith("[holdfast-demo]")

        server.kill()
        assert server.pid is None
        for prompt in ("one", "two"):
            events = await collect(client, [{"role": "user", "content": prompt}])
            assert isinstance(events[0], FallbackReply)
        assert client.guard.breaker.state.value == "open"
        assert (await check()).status is HealthStatus.DEGRADED  # the spec: an LLM outage degrades

        server.start()  # same port
        admin = DemoAdmin(server.url)
        events = await collect(client, [{"role": "user", "content": "three"}])
        assert isinstance(events[0], FallbackReply) and "circuit open" in events[0].error
        assert await admin.requests() == 0  # an open breaker fails fast, no I/O

        clock.advance(6.0)  # past recovery_timeout: the next call is the half-open probe
        events = await collect(client, [{"role": "user", "content": "four"}])
        assert text_of(events).startswith("[holdfast-demo]")
        assert client.guard.breaker.state.value == "closed"
        assert await admin.requests() == 1
        await admin.aclose()
    finally:
        server.stop()
