"""Helpers for the host tests: the session lifetime the keeper tests use, the Config their
Runtimes are built from, and the type of the ``start_runtime`` fixture."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from runtime.config import Config
from runtime.host.runtime import Runtime

#: Session lifetime in the keeper tests, seconds (the beat comes every third of it: 100 s).
TTL = 300

#: ``await start_runtime(user, face)``: a started Runtime for ``user``, stopped after the test.
StartRuntime = Callable[..., Awaitable[Runtime]]


def runtime_config(data_dir: Path, redis_url: str, llm_url: str) -> Config:
    """A Config on the given Redis and OpenAI-compatible endpoint, data in ``data_dir``
    (lexical embeddings: no model load; one Redis attempt with a 1 s timeout)."""
    return Config(
        data_dir=str(data_dir),
        llm={"preset": "openai", "base_url": llm_url, "model": "holdfast-demo"},
        redis={"url": redis_url},
        memory={"embedding_provider": "lexical"},
        resilience={"redis": {"max_attempts": 1, "timeout": 1.0}},
    )
