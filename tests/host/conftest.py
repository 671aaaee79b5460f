"""Fixtures for the host tests: a SessionManager on the real redis-server with a fake wall clock
(``wall``, epoch seconds), and Runtimes wired to that Redis and the suite's demo LLM server
(lexical embeddings: no model load). Every Runtime a test makes is stopped at its end. Helpers
the tests import live in ``tests/support/host.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Face, Runtime
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.sessions import SessionManager
from tests.support.clock import FakeClock
from tests.support.host import TTL, StartRuntime, runtime_config
from tests.support.state import fast_resilience


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
