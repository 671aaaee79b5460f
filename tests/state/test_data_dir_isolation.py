"""Two data dirs never share a redis-server, through the real console script: with one
``[redis].embedded_port`` for both (a shared config file), the second data dir's server cannot
bind the port the first one's listens on. Its ``holdfast chat`` wrote the conversation into the
first data dir's Redis (found by the storage issue's break test: it showed up in the other data
dir's list and vanished from its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runtime.core.procs import free_port
from runtime.demo.launcher import DemoLLMServer
from runtime.state.shared_redis import DataDirRedis
from tests.support.cli import run_script
from tests.support.storage import redis_servers_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path_factory.mktemp("demo") / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(90)
def test_chat_on_a_data_dir_whose_port_another_data_dir_holds_keeps_to_its_own_journal(
    tmp_path: Path, demo_llm: DemoLLMServer
) -> None:
    port = free_port()
    other = DataDirRedis(tmp_path / "other" / "redis", port=port)
    other.attach()
    try:
        env = {
            "HOLDFAST_DATA_DIR": str(tmp_path / "mine"),
            "HOLDFAST_REDIS__EMBEDDED_PORT": str(port),
            "HOLDFAST_LLM__BASE_URL": demo_llm.url,
            "HOLDFAST_LLM__MODEL": "holdfast-demo",
            "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        }
        run = run_script("--user", "alice", "chat", "a secret of mine", env=env)

        assert run.code == 0, run.err
        conv = run.err.rsplit("[conversation ", 1)[1].split("]")[0]
        assert not any(conv.encode() in key for key in redis.Redis(port=port).keys("*"))
        journal = (tmp_path / "mine" / "journal" / "redis-journal.jsonl").read_text()
        assert conv in journal and "a secret of mine" in journal
        assert redis_servers_of(tmp_path / "mine" / "redis") == []
    finally:
        other.detach()
