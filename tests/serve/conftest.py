"""Fixtures for ``holdfast serve`` tests: the real app on real uvicorn on a loopback port (in a
thread), wired to the real redis-server fixture and one demo LLM server per session, LanceDB in a
temp dir with the lexical embedder (no model load). ``serve(**sections)`` starts a server with
config sections overridden; every server started is stopped at the end of the test. Helpers the
tests import (``serve_config``, ``long_message``, ``make_key``) live in ``tests/support/serve.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.demo.admin import DemoAdmin
from runtime.demo.launcher import DemoLLMServer
from tests.support.serve import ServerThread, serve_config


@pytest.fixture(scope="session")
def demo_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path_factory.mktemp("demo") / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def demo_admin(demo_llm: DemoLLMServer) -> AsyncIterator[DemoAdmin]:
    async with DemoAdmin(demo_llm.root_url) as admin:
        await admin.reset()
        yield admin
        await admin.reset()


@pytest.fixture
def serve(
    data_dir: Path, redis_url: str, demo_llm: DemoLLMServer, demo_admin: DemoAdmin
) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(*, bound_as: str | None = None, llm_url: str | None = None, **sections: dict[str, Any]) -> ServerThread:
        config = serve_config(data_dir, redis_url, llm_url or demo_llm.url, **sections)
        server = ServerThread(config, bound_as=bound_as).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def server(serve: Callable[..., ServerThread]) -> ServerThread:
    """One server with the default test configuration."""
    return serve()


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as http:
        yield http


@pytest.fixture
def killable_llm(tmp_path: Path) -> Iterator[DemoLLMServer]:
    """A demo LLM server of this test alone, which it may stop or kill."""
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slow_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    """A demo LLM server that streams 40 tokens per second: a long answer is still streaming
    when a test disconnects or sends SIGTERM."""
    server = DemoLLMServer(tokens_per_second=40, log_path=tmp_path_factory.mktemp("slow") / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def script_env(data_dir: Path, redis_url: str, demo_llm: DemoLLMServer) -> dict[str, str]:
    """Environment for the real console script: this test's data dir, Redis and demo LLM."""
    return {
        "HOLDFAST_DATA_DIR": str(data_dir),
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        "HOLDFAST_MEMORY__MIN_SIMILARITY": "0.05",
        "HOLDFAST_RESILIENCE__LLM__MAX_ATTEMPTS": "1",
        "HOLDFAST_REDIS__URL": redis_url,
        "HOLDFAST_LLM__BASE_URL": demo_llm.url,
        "HOLDFAST_LLM__PRESET": "openai",
        "HOLDFAST_LLM__MODEL": "holdfast-demo",
        "HOLDFAST_AGENT__USER": "local",
    }
