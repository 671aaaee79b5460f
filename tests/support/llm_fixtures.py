"""Fixtures for the LLM and demo-server tests, registered in the root conftest: a real demo LLM
server child process, fast resilience settings, and an injected sleep that records the waits
(breaker recovery runs on the suite's ``clock`` fixture, from ``tests/support/clock.py``)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import LLMConfig, ResilienceConfig, ServiceResilience
from runtime.demo.launcher import DemoLLMServer
from runtime.llm.client import LLMClient
from runtime.resilience import Resilience
from tests.support.clock import FakeClock, RecordingSleep


def llm_settings(**overrides: Any) -> ResilienceConfig:
    base: dict[str, Any] = dict(
        max_attempts=3,
        initial_delay=0.01,
        max_delay=0.05,
        jitter=False,
        timeout=5.0,
        deadline=60.0,
        failure_threshold=50,
        minimum_calls=50,
        recovery_timeout=5.0,
        success_threshold=1,
        retry_after_cap=60.0,
    )
    base.update(overrides)
    return ResilienceConfig(llm=ServiceResilience(**base))


@pytest.fixture
def sleeps() -> RecordingSleep:
    """Records each wait and returns at once; the ``clock`` does not move while it "sleeps"."""
    return RecordingSleep()


@pytest.fixture
def make_resilience(clock: FakeClock, sleeps: RecordingSleep) -> Callable[..., Resilience]:
    def make(**overrides: Any) -> Resilience:
        return Resilience(llm_settings(**overrides), clock=clock, sleep=sleeps)

    return make


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    """One unpaced demo server per test module (tests reset its faults)."""
    log = tmp_path_factory.mktemp("demo-llm") / "demo.log"
    server = DemoLLMServer(tokens_per_second=0, log_path=log)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def demo_url(demo_server: DemoLLMServer) -> str:
    """The shared server's base URL, with every fault cleared and pacing off."""
    demo_server.start()
    # urllib, not httpx: a new httpx client builds an SSL context (~0.3 s) per test.
    body = json.dumps({"reset": True, "tokens_per_second": 0}).encode()
    request = urllib.request.Request(
        demo_server.root_url + "/admin/faults", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    return demo_server.url


@pytest.fixture
def demo_log(demo_server: DemoLLMServer) -> Path | None:
    return demo_server.log_path


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., LLMClient]]:
    made: list[LLMClient] = []

    def make(resilience: Resilience, base_url: str, **kwargs: Any) -> LLMClient:
        config = kwargs.pop("config", None) or LLMConfig(preset="demo", base_url=base_url, read_timeout=10.0)
        client = LLMClient(config, resilience, base_url=base_url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
