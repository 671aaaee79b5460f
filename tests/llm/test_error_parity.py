"""One translation of HTTP errors for every endpoint: the same status from /chat/completions (the
LLM client) and from /embeddings (the embedding provider) gives the same error type and the same
breaker effect. Real HTTP against the demo server's fault injection; respx only for a reply the
demo server cannot make (a key echoed back)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx

from runtime.config import LLMConfig, ResilienceConfig, ServiceResilience
from runtime.core.errors import (
    AppError,
    AuthenticationError,
    AuthorizationError,
    ExternalServiceError,
    NotFoundError,
    OperationTimeoutError,
    RateLimitError,
    ValidationError,
)
from runtime.demo.launcher import DemoLLMServer
from runtime.demo.model import EMBED_MODEL_NAME
from runtime.llm.client import LLMClient
from runtime.memory.embeddings import OpenAIEmbedder
from runtime.resilience import Resilience, is_outage
from tests.support.clock import FakeClock, RecordingSleep

HELLO = [{"role": "user", "content": "hello"}]


def _settings(max_attempts: int) -> ServiceResilience:
    return ServiceResilience(
        max_attempts=max_attempts,
        initial_delay=0.01,
        max_delay=0.05,
        jitter=False,
        timeout=10.0,
        deadline=60.0,
        failure_threshold=50,
        minimum_calls=50,
        recovery_timeout=5.0,
        retry_after_cap=60.0,
    )


def _faults(server: DemoLLMServer, **faults: Any) -> None:
    body = json.dumps(faults).encode()
    request = urllib.request.Request(
        server.root_url + "/admin/faults", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


class Both:
    """The LLM client and the embedding provider on one demo server, each behind its own guard."""

    def __init__(self, url: str, max_attempts: int, make_client: Callable[..., LLMClient]) -> None:
        self.sleeps = RecordingSleep()
        settings = _settings(max_attempts)
        self.resilience = Resilience(
            ResilienceConfig(llm=settings, embeddings=settings), clock=FakeClock(), sleep=self.sleeps
        )
        self.llm = make_client(self.resilience, url, http_client=httpx.AsyncClient())
        self.embedder = OpenAIEmbedder(
            EMBED_MODEL_NAME, LLMConfig(preset="openai", base_url=url, api_key="k"), http_client=httpx.AsyncClient()
        )
        self.embed_guard = self.resilience.guard("embeddings")

    def calls(self) -> dict[str, Callable[[], Awaitable[object]]]:
        return {
            "chat": lambda: self.llm.complete(HELLO, use_fallback=False),
            "embeddings": lambda: self.embed_guard.call(lambda: self.embedder.embed(["hello"])),
        }

    def failures_counted(self) -> dict[str, int]:
        return {
            "chat": self.llm.guard.breaker.snapshot().failure_count,
            "embeddings": self.embed_guard.breaker.snapshot().failure_count,
        }


@pytest.fixture
async def make_both(demo_url: str, make_client: Callable[..., LLMClient]) -> AsyncIterator[Callable[[int], Both]]:
    made: list[Both] = []

    def make(max_attempts: int) -> Both:
        both = Both(demo_url, max_attempts, make_client)
        made.append(both)
        return both

    yield make
    for both in made:
        await both.embedder.aclose()


async def _error_of(call: Callable[[], Awaitable[object]]) -> AppError:
    try:
        await call()
    except AppError as exc:
        return exc
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize(
    ("status", "kind", "counted"),
    [
        (400, ValidationError, False),
        (401, AuthenticationError, False),
        (403, AuthorizationError, False),
        (404, NotFoundError, False),
        (408, OperationTimeoutError, True),
        (413, ValidationError, False),
        (422, ValidationError, False),
        (500, ExternalServiceError, True),
        (503, ExternalServiceError, True),
    ],
)
async def test_the_same_status_is_the_same_error_and_breaker_effect_on_both_endpoints(
    status: int, kind: type[AppError], counted: bool, demo_server: DemoLLMServer, make_both: Callable[[int], Both]
) -> None:
    both = make_both(1)
    for name, call in both.calls().items():
        _faults(demo_server, fail_next=1, error_status=status)
        error = await _error_of(call)
        assert type(error) is kind, (name, error)
        assert error.status_code == status and f"HTTP {status}" in error.message, name
        assert error.retryable is (status in (408, 500, 503)), name
    expected = 1 if counted else 0
    assert both.failures_counted() == {"chat": expected, "embeddings": expected}


async def test_a_503_is_an_outage_and_a_400_is_not_on_both_endpoints(
    demo_server: DemoLLMServer, make_both: Callable[[int], Both]
) -> None:
    both = make_both(1)
    for status, outage in ((503, True), (400, False)):
        for name, call in both.calls().items():
            _faults(demo_server, fail_next=1, error_status=status)
            assert is_outage(await _error_of(call)) is outage, (name, status)


async def test_a_429_waits_for_retry_after_on_both_endpoints_then_succeeds(
    demo_server: DemoLLMServer, make_both: Callable[[int], Both]
) -> None:
    both = make_both(2)
    for name, call in both.calls().items():
        both.sleeps.delays.clear()
        _faults(demo_server, rate_limit_next=1, retry_after=7)
        await call()
        assert both.sleeps.delays == [7.0], name  # the server's hint, not the policy's 0.01 s

    single = make_both(1)
    for name, call in single.calls().items():
        _faults(demo_server, rate_limit_next=1, retry_after=7)
        error = await _error_of(call)
        assert isinstance(error, RateLimitError) and error.retry_after == 7.0, name
    assert single.failures_counted() == {"chat": 1, "embeddings": 1}


async def test_an_unreachable_endpoint_is_the_same_outage_for_both(make_client: Callable[..., LLMClient]) -> None:
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    both = Both(dead, 1, make_client)
    try:
        errors = {name: await _error_of(call) for name, call in both.calls().items()}
    finally:
        await both.embedder.aclose()
    assert {type(e).__name__ for e in errors.values()} == {"ServiceUnavailableError"}
    assert all(is_outage(e) and e.retryable for e in errors.values())
    assert both.failures_counted() == {"chat": 1, "embeddings": 1}


async def test_a_key_echoed_by_the_embedding_endpoint_never_reaches_the_message() -> None:
    leaked = "sk-live-0123456789abcdefghijklmnop"
    embedder = OpenAIEmbedder(
        "text-embedding-3-small",
        LLMConfig(preset="openai", base_url="http://embed.test/v1", api_key=leaked),
        http_client=httpx.AsyncClient(),
    )
    try:
        with respx.mock(base_url="http://embed.test/v1") as mock:
            mock.post("/embeddings").respond(401, json={"error": {"message": f"Incorrect API key: {leaked}"}})
            error = await _error_of(lambda: embedder.embed(["a"]))
    finally:
        await embedder.aclose()
    assert isinstance(error, AuthenticationError)
    assert leaked not in error.user_message() and "Incorrect API key" in error.user_message()
