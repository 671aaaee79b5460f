"""``[redis].min_replicas_ack`` (issue 19, part 2): a conversation append waits (Redis ``WAIT`` on
the append's own connection) until that many replicas have it.

On the 3+3 cluster and on a plain primary + replica pair: with ack=1 an append has returned only
once the replica holds it (read back from the replica, with ``READONLY`` on the cluster); with
the replica paused (SIGSTOP by pid, SIGCONT in a finally) the append is journaled as well, the
store says "written to Redis but not yet to 1 replica", and once the replica resumes the journal
replays and nothing is lost or doubled; a whole turn gives that notice to the user; ack=0 sends
no WAIT at all (the server's own ``INFO commandstats`` count).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from runtime.config import RedisConfig
from runtime.core.events import Degraded, Event, EventBus, StoreDegraded, TurnFinished, UserSaved
from runtime.host.runtime import Runtime
from runtime.resilience import Resilience
from runtime.state.client import RedisClient, RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.embedded_redis import EmbeddedRedis
from runtime.state.keys import Keys
from tests.support.cluster import RedisClusterFixture, ReplicatedRedis, paused
from tests.support.polling import wait_for
from tests.support.serve import serve_config
from tests.support.state import fast_resilience

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PREFIX = "ack"
#: WAIT's timeout in these tests (seconds): long enough for a loaded 2-core machine's replica to
#: answer, short enough that the paused cases end quickly, and below the guard's 1 s timeout
#: of ``serve_config`` (the append and its WAIT are one guarded call).
ACK_TIMEOUT = 0.5


@dataclass
class AckedStore:
    """A started ConversationStore and the events its bus published."""

    store: ConversationStore
    events: list[Event] = field(default_factory=list)


StoreFactory = Callable[[str, int], AckedStore]


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """``make_store(url, min_replicas_ack)``: a started store with its own journal and a recovery
    loop every 0.1 s; every store and client is closed after the test."""
    made: list[tuple[ConversationStore, RedisClient]] = []

    def make(url: str, replicas: int) -> AckedStore:
        bus = EventBus()
        client = make_redis_client(url)
        runner = RedisRunner(client, Resilience(fast_resilience(), bus).guard("redis"))
        config = RedisConfig(key_prefix=PREFIX, min_replicas_ack=replicas, replica_ack_timeout=ACK_TIMEOUT)
        store = ConversationStore(
            runner, config, journal_dir=tmp_path / f"journal{len(made)}", bus=bus, replay_interval=0.1
        )
        made.append((store, client))
        acked = AckedStore(store)
        bus.add_listener(acked.events.append)
        store.start()
        return acked

    yield make
    for store, client in made:
        await store.close()
        await client.aclose()


def _ids_on(server: EmbeddedRedis, key: str, *, cluster_replica: bool = False) -> list[str]:
    """Message ids stored under ``key`` on that one server (a replica: READONLY on a cluster)."""
    c = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    try:
        if cluster_replica:
            c.execute_command("READONLY")
        return [json.loads(raw)["id"] for raw in c.lrange(key, 0, -1)]
    finally:
        c.close()


def _wait_calls(server: EmbeddedRedis) -> int:
    """How many WAIT commands ``server`` has run (``INFO commandstats``)."""
    c = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    try:
        return int(c.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    finally:
        c.close()


def _cluster_pair(cluster: RedisClusterFixture, conv: str) -> tuple[EmbeddedRedis, EmbeddedRedis, str]:
    key = Keys(PREFIX).conv_messages(conv)
    primary = cluster.primary_for(key)
    return primary, cluster.replica_of(primary), key


# ------------------------------------------------------------------ the cluster


async def test_cluster_an_acked_append_is_on_the_replica_when_it_returns(
    redis_cluster: RedisClusterFixture, make_store: StoreFactory
) -> None:
    redis_cluster.wait_ok()
    store = make_store(redis_cluster.url, 1).store
    conv = await store.create("alice")
    primary, replica, key = _cluster_pair(redis_cluster, conv)
    before = _wait_calls(primary)
    for i in range(20):
        message = await store.add_message(conv, "user", f"message {i}")
        assert message.seq == i
        # Read straight after the append returned, from the replica itself.
        assert _ids_on(replica, key, cluster_replica=True)[-1] == message.id
    assert not store.degraded and store.pending_writes == 0
    assert _wait_calls(primary) - before == 20  # one WAIT per append, on the slot's own node


async def test_cluster_ack_zero_sends_no_wait(redis_cluster: RedisClusterFixture, make_store: StoreFactory) -> None:
    redis_cluster.wait_ok()
    store = make_store(redis_cluster.url, 0).store
    conv = await store.create("alice")
    primary, _, key = _cluster_pair(redis_cluster, conv)
    before = {node.port: _wait_calls(node) for node in redis_cluster.live_nodes()}
    for i in range(20):
        await store.add_message(conv, "user", f"message {i}")
    assert len(_ids_on(primary, key)) == 20
    assert {node.port: _wait_calls(node) for node in redis_cluster.live_nodes()} == before


async def test_cluster_a_paused_replica_journals_the_append_and_says_so(
    redis_cluster: RedisClusterFixture, make_store: StoreFactory
) -> None:
    redis_cluster.wait_ok()
    acked = make_store(redis_cluster.url, 1)
    store = acked.store
    conv = await store.create("alice")
    first = await store.add_message(conv, "user", "before the pause")
    primary, replica, key = _cluster_pair(redis_cluster, conv)
    try:
        with paused(replica):
            message = await store.add_message(conv, "user", "while the replica is paused")
            assert message.seq is None  # not confirmed: it waits in the journal as well
            assert store.degraded and store.pending_writes == 1
            assert "written to Redis but not yet to 1 replica (0 acknowledged within 0.5 s)" in store.degraded_reason
            notices = [e for e in acked.events if isinstance(e, StoreDegraded)]
            assert len(notices) == 1 and "not yet to 1 replica" in notices[0].reason
            # It is on the primary already (the journal is a second copy, not the only one).
            assert _ids_on(primary, key) == [first.id, message.id]
            # The recovery loop keeps it while the replica still does not acknowledge.
            await store.replay()
            assert store.pending_writes == 1
    finally:
        redis_cluster.wait_ok()
    await wait_for(lambda: not store.degraded and store.pending_writes == 0, 20.0, "the journal to replay")
    assert _ids_on(primary, key) == [first.id, message.id]  # replayed once, not appended twice
    assert _ids_on(replica, key, cluster_replica=True) == [first.id, message.id]
    stored = await store.read_tail(conv, 10)
    assert [(m.id, m.seq) for m in stored] == [(first.id, 0), (message.id, 1)]


# ------------------------------------------------------------------ one primary, one replica


async def test_pair_an_acked_append_is_on_the_replica_when_it_returns(
    redis_pair: ReplicatedRedis, make_store: StoreFactory
) -> None:
    store = make_store(redis_pair.url, 1).store
    conv = await store.create("alice")
    key = Keys(PREFIX).conv_messages(conv)
    for i in range(20):
        message = await store.add_message(conv, "user", f"message {i}")
        assert _ids_on(redis_pair.replica, key)[-1] == message.id
    assert _wait_calls(redis_pair.primary) == 20  # one per append, never one more
    # Two replicas are asked for, one exists: every append is journaled as well.
    strict = make_store(redis_pair.url, 2).store
    extra = await strict.add_message(conv, "user", "needs two replicas")
    assert extra.seq is None and strict.pending_writes == 1
    assert "written to Redis but not yet to 2 replicas (1 acknowledged within 0.5 s)" in strict.degraded_reason


async def test_pair_ack_zero_sends_no_wait(redis_pair: ReplicatedRedis, make_store: StoreFactory) -> None:
    store = make_store(redis_pair.url, 0).store
    conv = await store.create("alice")
    for i in range(20):
        await store.add_message(conv, "user", f"message {i}")
    assert _wait_calls(redis_pair.primary) == 0


async def test_pair_a_turn_with_the_replica_paused_tells_the_user_and_loses_nothing(
    redis_pair: ReplicatedRedis, demo_url: str, tmp_path: Path
) -> None:
    config = serve_config(
        tmp_path / "data",
        redis_pair.url,
        demo_url,
        redis={"min_replicas_ack": 1, "replica_ack_timeout": ACK_TIMEOUT},
        memory={"enabled": False},
    )
    async with Runtime.from_config(config, user="alice", start_monitor=False) as rt:
        conv = await rt.agent.new_conversation("replica paused")
        with paused(redis_pair.replica):
            events = [e async for e in rt.agent.run_turn(conv, "hello while the replica sleeps")]
        saved = next(e for e in events if isinstance(e, UserSaved))
        assert saved.journaled
        notice = next(e for e in events if isinstance(e, Degraded) and e.service == "redis")
        assert "written to Redis but not yet to 1 replica" in notice.reason
        assert "local journal" in notice.reason
        assert any(isinstance(e, TurnFinished) for e in events), "the turn went on after saying so"
        redis_pair.wait_linked()
        await wait_for(
            lambda: rt.store_status().pending_writes == 0 and not rt.store_status().degraded, 20.0, "the replay"
        )
        stored = await rt.store.read_tail(conv, 10)
    key = Keys(config.redis.key_prefix).conv_messages(conv)
    ids = [m.id for m in stored]
    assert ids[0] == saved.message_id and [m.role for m in stored] == ["user", "assistant"]
    assert _ids_on(redis_pair.replica, key) == ids  # both on the replica, each once
