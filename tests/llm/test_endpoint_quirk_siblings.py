"""Siblings of issue 14's cases found by trying it as a new user: the same kind of fault in a shape
the first tests did not send (respx; the shapes come from real servers and gateways).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import respx

from runtime.core.errors import AppError
from runtime.llm.client import LLMClient
from runtime.resilience import Resilience

BASE = "http://siblings.test/v1"
ASK = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "what is 2+3?"}]
CALC = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate arithmetic",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": choices, **extra}


def sse(*chunks: dict[str, Any]) -> httpx.Response:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def collect(client: LLMClient, messages: list[dict[str, Any]] = ASK, tools: Any = CALC) -> list[Any]:
    async with aclosing(client.stream_chat(messages, tools)) as events:
        return [event async for event in events]


@pytest.fixture
def client(make_resilience: Callable[..., Resilience], make_client: Callable[..., LLMClient]) -> LLMClient:
    return make_client(make_resilience(max_attempts=1), BASE, http_client=httpx.AsyncClient())


# ---------------------------------------------------------------- case 10: GET /models absent or unusable


@pytest.mark.parametrize(
    ("models", "why"),
    [
        (httpx.Response(404, text="404 page not found"), "HTTP 404"),
        (httpx.Response(405, text="Method Not Allowed"), "HTTP 405"),
        (httpx.Response(501, json={"error": {"message": "Not implemented"}}), "HTTP 501"),
        (httpx.Response(200, html="<!doctype html><html><body>chat web UI</body></html>"), "not a model list"),
        (httpx.Response(200, json={"models": [{"name": "llama3"}]}), "not a model list"),
    ],
    ids=["404", "405", "501", "html-page", "other-json"],
)
async def test_health_probe_falls_back_to_a_completion_when_models_is_absent(
    client: LLMClient, models: httpx.Response, why: str
) -> None:
    """Doctor and health probe an endpoint whose ``GET /models`` is missing (any of the statuses
    proxies answer) or answers something that is not a model list: a one-token completion decides."""
    reply = {"model": "m", "choices": [{"index": 0, "finish_reason": "length", "message": {"content": "p"}}]}
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").mock(return_value=models)
        chat = mock.post("/chat/completions").respond(200, json=reply)
        answered = await client.probe()
    assert answered == {"method": "completion", "models_error": why}
    assert json.loads(chat.calls[0].request.content)["max_tokens"] == 1


async def test_health_probe_still_fails_a_refused_key_and_a_dead_completion(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").respond(401, json={"error": {"message": "Incorrect API key provided"}})
        with pytest.raises(AppError) as refused:
            await client.probe()
        assert refused.value.status_code == 401
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").respond(404)
        mock.post("/chat/completions").respond(404, json={"error": {"message": "no such path"}})
        with pytest.raises(AppError) as missing:
            await client.probe()
        assert missing.value.status_code == 404


async def test_a_model_list_is_still_counted(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").respond(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
        assert await client.probe() == {"method": "models", "models": 2}
        assert await client.list_models() == ["a", "b"]
