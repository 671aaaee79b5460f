"""Fixtures for the app's Pilot tests: a config on the real Redis fixture (or the app's own
embedded redis-server), the embedded demo LLM server, lexical embeddings (no model load), and
resilience settings short enough that breakers trip and heal within a test."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.config import LoadedConfig, load_config

warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)

#: Pilot tests boot a whole runtime on a shared 2-core machine: generous, but bounded.
DEADLINE = 30.0

FAST_LLM = {
    "resilience.llm.max_attempts": 1,
    "resilience.llm.initial_delay": 0.01,
    "resilience.llm.failure_threshold": 1,
    "resilience.llm.recovery_timeout": 0.3,
    "resilience.llm.success_threshold": 1,
    "resilience.llm.timeout": 5.0,
    "resilience.llm.deadline": 10.0,
    "resilience.redis.max_attempts": 1,
    "resilience.redis.recovery_timeout": 0.3,
    "resilience.redis.timeout": 1.0,
    "resilience.redis.deadline": 2.0,
}


def make_config(data_dir: Path, redis_url: str = "", **overrides: Any) -> LoadedConfig:
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "redis.url": redis_url or None,
        "memory.embedding_provider": "lexical",
        "llm.demo_tokens_per_second": 2000.0,
        "ui.health_interval": 0.5,
        "agent.user": "tester",
        **FAST_LLM,
    }
    values.update(overrides)
    return load_config(environ={}, overrides=values, user_config=Path("/nonexistent"))


@pytest.fixture
def app_config(data_dir: Path, redis_url: str) -> LoadedConfig:
    return make_config(data_dir, redis_url)


async def wait_for(pilot: Any, predicate: Callable[[], bool], timeout: float = DEADLINE, what: str = "") -> None:
    """Let the app run until ``predicate()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


async def ready(pilot: Any) -> None:
    await asyncio.wait_for(pilot.app.ready.wait(), DEADLINE)


async def send(pilot: Any, text: str) -> None:
    """Type ``text`` into the composer the way a person pastes it, then press Enter."""
    pilot.app.composer.text = text
    await pilot.press("enter")
