"""A Redis that answers but refuses writes (out of memory) is an outage of writes, by the one
outage rule: the conversation store journals what the user wrote, says why, and replays it
once Redis takes writes again. Real redis-server, ``maxmemory 1`` under ``noeviction``."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from runtime.core.events import Event, JournalReplayed, StoreDegraded
from runtime.resilience import HealthStatus
from runtime.state.conversations import ConversationStore
from runtime.state.health import redis_check
from tests.support.clock import FakeClock

# CONFIG SET on one server's process: not a cluster test.
pytestmark = pytest.mark.single_redis


async def _refuse_writes(admin: aioredis.Redis) -> None:
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", 1)


async def test_out_of_memory_redis_journals_the_message_says_why_and_replays_it_later(
    conversations: ConversationStore, admin: aioredis.Redis, events: list[Event], mono: FakeClock
) -> None:
    conv = await conversations.create("alice", title="shopping")
    await conversations.add_message(conv, "user", "first, while Redis had room")

    await _refuse_writes(admin)
    saved = await conversations.add_message(conv, "user", "second, while Redis was full")

    assert saved.content == "second, while Redis was full"
    assert conversations.degraded and conversations.pending_writes == 1
    degraded = [e for e in events if isinstance(e, StoreDegraded)]
    assert len(degraded) == 1 and "out of memory" in degraded[0].reason
    assert "out of memory" in conversations.degraded_reason and "(OOM)" in conversations.degraded_reason
    # The user still sees both messages (the second from the local cache).
    assert [m.content for m in await conversations.read_tail(conv, 10)][-1] == "second, while Redis was full"

    await admin.config_set("maxmemory", 0)
    mono.advance(5.0)  # past the redis breaker's recovery timeout: the replay is its probe
    report = await conversations.replay()

    assert report.replayed == 1 and report.remaining == 0 and not report.error
    assert not conversations.degraded and conversations.pending_writes == 0
    assert any(isinstance(e, JournalReplayed) and e.replayed == 1 for e in events)
    stored = [m.content for m in await conversations.read_tail(conv, 10)]
    assert stored == ["first, while Redis had room", "second, while Redis was full"]


async def test_replay_keeps_the_journal_while_redis_still_refuses_writes(
    conversations: ConversationStore, admin: aioredis.Redis, mono: FakeClock
) -> None:
    conv = await conversations.create("alice")
    await _refuse_writes(admin)
    await conversations.add_message(conv, "user", "kept safe")

    mono.advance(5.0)  # past the breaker's recovery timeout: the replay really asks Redis
    report = await conversations.replay()

    # An outage stops the replay (nothing is dropped as if it could never apply).
    assert report.replayed == 0 and report.dropped == 0 and report.remaining == 1 and report.error
    assert conversations.degraded and conversations.pending_writes == 1
    assert "kept safe" in conversations.journal.path.read_text()


async def test_the_health_check_says_degraded_with_the_reason_while_redis_refuses_writes(
    admin: aioredis.Redis, redis_client: aioredis.Redis
) -> None:
    healed: list[bool] = []
    check = redis_check(redis_client, slow_ping_ms=10_000, on_healthy=lambda: healed.append(True))
    assert (await check()).status is HealthStatus.HEALTHY and healed == [True]

    await _refuse_writes(admin)
    refused = await check()

    # PING still answers, so only the write probe tells: degraded (an outage of writes), with why.
    assert refused.status is HealthStatus.DEGRADED
    assert refused.details["writes"] == "refused" and refused.details["redis_reply"] == "OOM"
    assert refused.error is not None and "out of memory (maxmemory reached) and refuses writes" in refused.error
    assert healed == [True]  # no replay is started against a Redis that refuses writes

    await admin.config_set("maxmemory", 0)
    assert (await check()).status is HealthStatus.HEALTHY and healed == [True, True]
