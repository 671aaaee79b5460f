"""Fixtures for agent tests: one real demo LLM server per session, a Runtime per test wired to
the real redis-server fixture, LanceDB in a temp dir (lexical embedder: no model load), and
low retry counts so outage tests end quickly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Config
from runtime.demo.admin import DemoAdmin
from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Runtime


@pytest.fixture(scope="session")
def demo_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    server = DemoLLMServer(tokens_per_second=20000, log_path=tmp_path_factory.mktemp("demo") / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def demo_admin(demo_llm: DemoLLMServer) -> AsyncIterator[DemoAdmin]:
    async with DemoAdmin(demo_llm.root_url) as admin:
        await admin.reset()
        yield admin
        await admin.reset()


def make_config(data_dir: Path, redis_url: str, llm_url: str, **sections: dict[str, Any]) -> Config:
    fast = {"max_attempts": 1, "initial_delay": 0.0, "recovery_timeout": 60.0}
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "llm": {"preset": "openai", "base_url": llm_url, "model": "holdfast-demo"},
        "redis": {"url": redis_url},
        "memory": {"embedding_provider": "lexical", "min_similarity": 0.05},
        "resilience": {
            "llm": dict(fast),
            "redis": {**fast, "timeout": 1.0},
            "tools": dict(fast),
            "memory": dict(fast),
            "embeddings": dict(fast),
        },
        "agent": {"turn_lock_timeout": 5.0},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return Config(**raw)


@pytest.fixture
def runtime_factory(
    data_dir: Path, redis_url: str, demo_llm: DemoLLMServer, demo_admin: DemoAdmin
) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(user: str = "alice", **sections: dict[str, Any]) -> Runtime:
        rt = Runtime.from_config(
            make_config(data_dir, redis_url, demo_llm.url, **sections), user=user, start_monitor=False
        )
        made.append(rt)
        return rt

    yield make


@pytest.fixture
async def rt(runtime_factory: Callable[..., Runtime]) -> AsyncIterator[Runtime]:
    runtime = runtime_factory()
    async with runtime:
        yield runtime
