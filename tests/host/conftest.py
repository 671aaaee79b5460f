"""Fixtures for the host tests: a SessionManager on the real redis-server with a fake wall clock
(``wall``, epoch seconds), and Runtimes wired to that Redis and the suite's demo LLM server
(lexical embeddings: no model load). Every Runtime a test makes is stopped at its end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from runtime.config import Config
from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Face, Runtime
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.sessions import SessionManager
from tests.support.clock import FakeClock
from tests.support.state import fast_resilience

#: Session lifetime in the keeper tests, seconds (the beat comes every third of it: 100 s).
TTL = 300


@pytest.fixture
def wall() -> FakeClock:
    """Epoch-seconds fake clock for session times."""
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def session_manager(redis_url: str, wall: FakeClock) -> AsyncIterator[SessionManager]:
    """The spec's SessionManager on the real Redis: TTL 300 s, at most 3,600 s, times from ``wall``."""
    client = make_redis_client(redis_url)
    runner = RedisRunner(client, Resilience(fast_resilience()).guard("redis"))
    yield SessionManager(runner, key_prefix="t", default_ttl=TTL, max_ttl=3600, clock=wall)
    await client.aclose()


def runtime_config(data_dir: Path, redis_url: str, llm_url: str) -> Config:
    """A Config on the given Redis and OpenAI-compatible endpoint, data in ``data_dir``."""
    return Config(
        data_dir=str(data_dir),
        llm={"preset": "openai", "base_url": llm_url, "model": "holdfast-demo"},
        redis={"url": redis_url},
        memory={"embedding_provider": "lexical"},
        resilience={"redis": {"max_attempts": 1, "timeout": 1.0}},
    )


#: ``await start_runtime(user, face)``: a started Runtime for ``user``, stopped after the test.
StartRuntime = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start_runtime(data_dir: Path, redis_url: str, demo_server: DemoLLMServer) -> AsyncIterator[StartRuntime]:
    made: list[Runtime] = []

    async def start(user: str = "alice", face: Face = "cli") -> Runtime:
        config = runtime_config(data_dir / user, redis_url, demo_server.url)
        rt = Runtime.from_config(config, user=user, start_monitor=False, face=face)
        made.append(rt)
        await rt.start()
        return rt

    yield start
    for rt in made:
        await rt.stop()
