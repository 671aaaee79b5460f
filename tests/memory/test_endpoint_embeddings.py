"""Memories embedded by an OpenAI-compatible endpoint's model whose dimensions are not known in
advance (``[memory].embedding_provider = "openai"`` with any model but OpenAI's own), through the
real console script against the real demo LLM server's ``/v1/embeddings``: every command is a new
process that has not embedded anything yet, and ``memory list`` and ``memory search`` failed in it
with "dimension of embedding model ... unknown until the first call" (found by the storage
issue's break test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.demo.launcher import DemoLLMServer
from tests.support.cli import run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path_factory.mktemp("demo") / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(4 * 60)
def test_a_new_process_lists_and_searches_memories_of_an_endpoints_model(
    data_dir: Path, redis_url: str, demo_llm: DemoLLMServer
) -> None:
    env = {
        "HOLDFAST_DATA_DIR": str(data_dir),
        "HOLDFAST_REDIS__URL": redis_url,
        "HOLDFAST_LLM__BASE_URL": demo_llm.url,
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "openai",
        "HOLDFAST_MEMORY__EMBEDDING_MODEL": "holdfast-demo-embed",
        "HOLDFAST_MEMORY__MIN_SIMILARITY": "0.05",
    }
    added = run_script("--user", "alice", "memory", "add", "My dog is called Rex", env=env)
    assert added.code == 0, added.err

    listed = run_script("--user", "alice", "memory", "list", env=env)
    assert listed.code == 0, listed.err
    assert [m["content"] for m in listed.json_lines()] == ["My dog is called Rex"]

    found = run_script("--user", "alice", "memory", "search", "dog called Rex", env=env)
    assert found.code == 0, found.err
    assert [m["content"] for m in found.json_lines()] == ["My dog is called Rex"]
    tables = sorted(p.name for p in (data_dir / "memory").iterdir())
    assert len(tables) == 1 and tables[0].startswith("memories__holdfast_demo_embed__")
