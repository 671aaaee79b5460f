"""Streams reuse the keep-alive connection: a remote endpoint would otherwise pay a TCP (and
TLS) handshake in every reply's time to first token."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx

from runtime.llm.client import LLMClient
from runtime.llm.stream_events import Finish, TextDelta
from runtime.resilience import Resilience


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting new TCP connections through httpcore's trace hook."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.connects = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def trace(name: str, info: dict[str, Any]) -> None:
            if name == "connection.connect_tcp.complete":
                self.connects += 1

        request.extensions["trace"] = trace
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_consecutive_streams_share_one_connection(
    make_resilience: Callable[..., Resilience], make_client: Callable[..., LLMClient], demo_url: str
) -> None:
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport) as http:
        client = make_client(make_resilience(), demo_url, http_client=http)
        for question in ("hello", "what did I say?", "and now?"):
            async with aclosing(client.stream_chat([{"role": "user", "content": question}])) as events:
                seen = [event async for event in events]
            assert any(isinstance(e, TextDelta) for e in seen) and isinstance(seen[-1], Finish)
    assert transport.connects == 1
