"""Failover without loss (issue 19): a conversation keeps taking messages while the Redis Cluster
primary that holds it is killed by pid and its replica is promoted. Writes during the gap go to
the local journal, the replay is idempotent, and every message the store acknowledged is in Redis
exactly once, in order."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.core.events import EventBus, JournalReplayed, StoreDegraded
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.keys import Keys
from tests.support.cluster import RedisClusterFixture, cluster_unavailable_reason
from tests.support.polling import wait_for
from tests.support.state import fast_resilience

pytestmark = pytest.mark.slow


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisClusterFixture]:
    """A cluster of this test's own: the test kills one of its primaries."""
    reason = cluster_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Redis Cluster unavailable: {reason}")
    cluster = RedisClusterFixture(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


async def test_killing_the_primary_mid_conversation_loses_and_duplicates_nothing(
    own_cluster: RedisClusterFixture, tmp_path: Path
) -> None:
    bus = EventBus()
    seen: list[object] = []
    bus.add_listener(seen.append)
    resilience = Resilience(fast_resilience(), bus)
    client = make_redis_client(own_cluster.url, connect_timeout=0.3, socket_timeout=0.5)
    runner = RedisRunner(client, resilience.guard("redis"))
    store = ConversationStore(
        runner, RedisConfig(key_prefix="t"), journal_dir=tmp_path / "journal", bus=bus, replay_interval=0.2
    )
    store.start()
    try:
        conv = await store.create("alice")
        victim = own_cluster.primary_for(Keys("t").conv_messages(conv))
        acknowledged: list[str] = []
        killed_at = 0.0
        for i in range(40):
            if i == 10:
                assert victim.pid is not None
                os.kill(victim.pid, signal.SIGKILL)  # the primary holding this conversation
                killed_at = time.monotonic()
            message = await store.add_message(conv, "user", f"message {i}")
            acknowledged.append(message.id)
        assert any(isinstance(e, StoreDegraded) for e in seen), "no write went to the journal during the gap"

        await wait_for(lambda: not store.degraded and store.pending_writes == 0, 20.0, "the journal to replay")
        recovered = time.monotonic() - killed_at
        assert any(isinstance(e, JournalReplayed) for e in seen)
        await store.replay()  # a second replay of the same records changes nothing

        reader = make_redis_client(own_cluster.url)
        fresh = ConversationStore(
            RedisRunner(reader, resilience.guard("redis")),
            RedisConfig(key_prefix="t"),
            journal_dir=tmp_path / "other-journal",
        )
        stored = await fresh.read_tail(conv, 1000)
        await fresh.close()
        await reader.aclose()
        assert [m.id for m in stored] == acknowledged, "lost, duplicated or reordered messages"
        assert [m.seq for m in stored] == list(range(40))
        assert recovered < 20.0
    finally:
        await store.close()
        await client.aclose()
