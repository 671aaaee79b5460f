"""A Redis that answers but refuses writes, seen through the host (the TUI's and serve's path):
reads still go to Redis, so a fresh process's prompt holds the whole conversation, the redis
breaker stays closed, and the journaled turn reaches Redis within seconds of the limit being
lifted, with no further message. Real redis-server (``maxmemory 1`` under ``noeviction``), the
suite's demo LLM server, real Runtimes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from runtime.agent import collect
from runtime.agent.turn import final_text
from runtime.core.events import Degraded
from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Runtime
from tests.support.host import runtime_config
from tests.support.polling import wait_for

# CONFIG SET on one server's process: not a cluster test.
pytestmark = pytest.mark.single_redis

#: How soon a user expects the journaled turn in Redis once it takes writes again, seconds.
REPLAY_WITHIN = 5.0


@pytest.fixture
async def runtimes(data_dir: Path, redis_url: str, demo_server: DemoLLMServer) -> AsyncIterator[list[Runtime]]:
    """Runtimes a test starts (each its own data dir: a fresh process); all stopped at its end."""
    made: list[Runtime] = []
    yield made
    for rt in made:
        await rt.stop()


async def _start(made: list[Runtime], data_dir: Path, redis_url: str, llm_url: str) -> Runtime:
    rt = Runtime.from_config(runtime_config(data_dir, redis_url, llm_url), user="alice", face="tui")
    made.append(rt)
    await rt.start()
    return rt


async def test_a_fresh_host_on_an_out_of_memory_redis_prompts_with_the_history_and_replays_unasked(
    runtimes: list[Runtime], data_dir: Path, redis_url: str, demo_server: DemoLLMServer, admin: aioredis.Redis
) -> None:
    first = await _start(runtimes, data_dir / "one", redis_url, demo_server.url)
    conv = await first.agent.new_conversation()
    await collect(first.run_turn(conv, "the boat is blue"))
    await first.stop()

    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", 1)
    second = await _start(runtimes, data_dir / "two", redis_url, demo_server.url)
    events = await collect(second.run_turn(conv, "the sail is white"))

    # The prompt held the earlier turn, read from Redis: system, 2 user, 1 assistant.
    assert "I received 4 messages (1 system, 2 user, 1 assistant)" in final_text(events)
    reasons = [e.reason for e in events if isinstance(e, Degraded) and e.service == "redis"]
    assert any("out of memory" in r and "local journal" in r for r in reasons), reasons
    assert second.store_status().pending_writes >= 2  # the user's message and the answer (and metadata)
    assert second.resilience.guard("redis").breaker.state.value == "closed"

    await admin.config_set("maxmemory", 0)
    lifted = time.monotonic()

    async def replayed() -> bool:
        return second.store_status().pending_writes == 0

    await wait_for(replayed, timeout=REPLAY_WITHIN, what="the journaled turn to reach Redis unasked")
    took = time.monotonic() - lifted
    stored = await second.store.read_tail(conv, 10)
    assert [m.content for m in stored if m.role == "user"] == ["the boat is blue", "the sail is white"]
    assert [m.seq for m in stored] == [0, 1, 2, 3]
    assert took < REPLAY_WITHIN, took
