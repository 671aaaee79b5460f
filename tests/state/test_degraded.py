"""Degraded mode on a real redis-server that is SIGKILLed and restarted (with its AOF, so
Redis itself keeps what it acknowledged): the journal catches every write, replays in
order, survives an app restart and never duplicates."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.core.errors import ServiceUnavailableError
from runtime.core.events import Event, EventBus, JournalReplayed, StoreDegraded, StoreRecovered
from runtime.core.messages import ChatMessage
from runtime.resilience import HealthMonitor, HealthStatus, Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.embedded_redis import EmbeddedRedis
from runtime.state.health import redis_check
from tests.support.clock import FakeClock
from tests.support.state import fast_resilience

CONFIG = RedisConfig(key_prefix="t")


@pytest.fixture(scope="module")
def aof_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-aof"), persist=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aof_url(aof_redis: EmbeddedRedis) -> str:
    aof_redis.start()
    assert aof_redis.address is not None
    with socket.create_connection((aof_redis.address.host, aof_redis.address.port), timeout=2) as sock:
        sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    return aof_redis.url


class App:
    """One Holdfast process's view: its own client, guards and store over a shared journal dir."""

    def __init__(self, url: str, journal_dir: Path, bus: EventBus, mono: FakeClock, wall: FakeClock) -> None:
        self.client = make_redis_client(url)
        self.resilience = Resilience(fast_resilience(), bus, clock=mono, sleep=mono.sleep)
        self.runner = RedisRunner(self.client, self.resilience.guard("redis"))
        self.store = ConversationStore(
            self.runner,
            CONFIG,
            journal_dir=journal_dir,
            bus=bus,
            clock=wall,
            monotonic=mono,
            sleep=mono.sleep,
            replay_interval=2.0,
        )

    async def close(self) -> None:
        await self.store.close()
        await self.client.aclose()


@pytest.fixture
async def apps(
    aof_url: str, journal_dir: Path, bus: EventBus, mono: FakeClock, wall: FakeClock
) -> AsyncIterator[list[App]]:
    made: list[App] = []

    def make() -> App:
        app = App(aof_url, journal_dir, bus, mono, wall)
        made.append(app)
        return app

    made.append(make())
    yield made
    for app in made:
        await app.close()


def _new_app(apps: list[App], aof_url: str, journal_dir: Path, bus: EventBus, mono: FakeClock, wall: FakeClock) -> App:
    app = App(aof_url, journal_dir, bus, mono, wall)
    apps.append(app)
    return app


async def _all(store: ConversationStore, conv: str) -> list[ChatMessage]:
    return await store.read_tail(conv, 100_000)


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events if isinstance(e, (StoreDegraded, StoreRecovered, JournalReplayed))]


async def _next(bus: EventBus, kind: type[Event], timeout: float = 20.0) -> Event:
    sub = bus.subscribe(kind)
    try:
        return await asyncio.wait_for(anext(aiter(sub)), timeout)
    finally:
        sub.close()


async def test_200_appends_across_a_kill_and_restart_arrive_exactly_once_in_order(
    apps: list[App], aof_redis: EmbeddedRedis, mono: FakeClock, events: list[Event]
) -> None:
    store = apps[0].store
    conv = await store.create("alice", "outage")
    for i in range(200):
        if i == 60:
            aof_redis.kill()
        if i == 140:
            aof_redis.start()
        await store.add_message(conv, "user", f"m{i}")
        if i == 100:
            # Reads during the outage come from the local cache, journaled messages included.
            assert store.degraded and store.pending_writes == 41
            assert [m.content for m in await store.read_tail(conv, 3)] == ["m98", "m99", "m100"]
    assert store.degraded and store.pending_writes == 140
    mono.advance(5)  # past the breaker's recovery timeout
    report = await store.replay()
    assert (report.replayed, report.duplicates, report.remaining) == (140, 0, 0)
    assert not store.degraded and store.pending_writes == 0
    messages = await _all(store, conv)
    assert [m.content for m in messages] == [f"m{i}" for i in range(200)]
    assert [m.seq for m in messages] == list(range(200))
    assert _kinds(events) == ["StoreDegraded", "JournalReplayed", "StoreRecovered"]
    assert store.journal.records() == []


async def test_journal_survives_an_app_restart_and_replays_on_next_start(
    apps: list[App],
    aof_redis: EmbeddedRedis,
    aof_url: str,
    journal_dir: Path,
    bus: EventBus,
    mono: FakeClock,
    wall: FakeClock,
) -> None:
    first = apps[0].store
    conv = await first.create("alice", "restart")
    for i in range(50):
        await first.add_message(conv, "user", f"m{i}")
    aof_redis.kill()
    for i in range(50, 150):
        await first.add_message(conv, "user", f"m{i}")
    assert first.pending_writes == 100
    await apps[0].close()  # the app exits with writes still journaled

    # Next start while Redis is still down: the journal is picked up and readable.
    second = _new_app(apps, aof_url, journal_dir, bus, mono, wall).store
    report = await second.open()
    assert report.remaining == 100 and second.degraded and second.pending_writes == 100
    assert [m.content for m in await second.read_tail(conv, 2)] == ["m148", "m149"]
    await apps[1].close()

    aof_redis.start()
    third = _new_app(apps, aof_url, journal_dir, bus, mono, wall).store
    report = await third.open()
    assert (report.replayed, report.remaining) == (100, 0) and not third.degraded
    for i in range(150, 200):
        await third.add_message(conv, "user", f"m{i}")
    messages = await _all(third, conv)
    assert [m.content for m in messages] == [f"m{i}" for i in range(200)]
    assert len({m.id for m in messages}) == 200


@pytest.mark.parametrize("applied_before_crash", [0, 1, 37, 99, 100])
async def test_a_crash_part_way_through_replay_loses_and_duplicates_nothing(
    apps: list[App],
    aof_redis: EmbeddedRedis,
    aof_url: str,
    journal_dir: Path,
    bus: EventBus,
    mono: FakeClock,
    wall: FakeClock,
    applied_before_crash: int,
) -> None:
    store = apps[0].store
    conv = await store.create("alice", "crash")
    aof_redis.kill()
    for i in range(100):
        await store.add_message(conv, "user", f"m{i}")
    await apps[0].close()
    aof_redis.start()
    # A replay applies records in journal order and removes them only at the end, so a crash
    # after k records leaves exactly this: the first k in Redis, the whole journal on disk.
    other = _new_app(apps, aof_url, journal_dir, bus, mono, wall).store
    for record in other.journal.records()[:applied_before_crash]:
        await other.append(record["conv"], ChatMessage.from_dict(record["message"]))
    restarted = _new_app(apps, aof_url, journal_dir, bus, mono, wall).store
    report = await restarted.open()
    assert report.duplicates == applied_before_crash and report.remaining == 0
    messages = await _all(restarted, conv)
    assert [m.content for m in messages] == [f"m{i}" for i in range(100)]


async def test_replay_while_redis_is_still_down_keeps_everything(
    apps: list[App], aof_redis: EmbeddedRedis, mono: FakeClock
) -> None:
    store = apps[0].store
    conv = await store.create("alice")
    aof_redis.kill()
    for i in range(5):
        await store.add_message(conv, "user", f"m{i}")
    mono.advance(5)
    report = await store.replay()
    assert report.replayed == 0 and report.remaining == 5 and report.error
    assert store.degraded and len(store.journal.records()) == 5


async def test_conversations_created_renamed_and_deleted_offline_replay_in_order(
    apps: list[App], aof_redis: EmbeddedRedis, mono: FakeClock
) -> None:
    store = apps[0].store
    doomed = await store.create("alice", "doomed")
    aof_redis.kill()
    conv = await store.create("alice", "made offline", "sys")
    await store.add_message(conv, "user", "hello offline")
    await store.rename(conv, "renamed offline")
    await store.set_system_prompt(conv, "prompt set offline")
    await store.delete(doomed)
    await store.add_message(doomed, "user", "to a deleted conversation")  # cannot apply: dropped on replay
    assert (await store.get(conv)).title == "renamed offline"
    aof_redis.start()
    mono.advance(5)
    report = await store.replay()
    assert (report.replayed, report.dropped, report.remaining) == (5, 1, 0)
    assert (await store.get(conv)).system_prompt == "prompt set offline"
    listed = await store.list_conversations("alice")
    assert [(c.id, c.title, c.message_count) for c in listed] == [(conv, "renamed offline", 1)]
    assert [m.content for m in await store.read_tail(conv, 10)] == ["hello offline"]


async def test_background_loop_replays_when_redis_answers_again(
    apps: list[App], aof_redis: EmbeddedRedis, bus: EventBus
) -> None:
    store = apps[0].store
    conv = await store.create("alice")
    store.start()
    aof_redis.kill()
    for i in range(10):
        await store.add_message(conv, "user", f"m{i}")
    assert store.degraded
    recovered = asyncio.ensure_future(_next(bus, StoreRecovered))
    aof_redis.start()
    await recovered
    assert not store.degraded and store.pending_writes == 0
    assert [m.content for m in await store.read_tail(conv, 100)] == [f"m{i}" for i in range(10)]


async def test_health_check_reports_redis_and_triggers_replay(
    apps: list[App], aof_redis: EmbeddedRedis, bus: EventBus, mono: FakeClock
) -> None:
    store = apps[0].store
    monitor = HealthMonitor(bus)
    monitor.register_check("redis", redis_check(apps[0].client, on_healthy=store.notify_healthy))
    assert (await monitor.run_checks()).checks["redis"].status is HealthStatus.HEALTHY
    conv = await store.create("alice")
    aof_redis.kill()
    await store.add_message(conv, "user", "while down")
    down = (await monitor.run_checks()).checks["redis"]
    assert down.status is HealthStatus.UNHEALTHY and down.error and "unreachable" in down.error
    aof_redis.start()
    mono.advance(5)
    recovered = asyncio.ensure_future(_next(bus, StoreRecovered))
    up = (await monitor.run_checks()).checks["redis"]
    assert up.status is HealthStatus.HEALTHY and up.latency_ms is not None
    await recovered
    assert [m.content for m in await store.read_tail(conv, 10)] == ["while down"]


async def test_slow_ping_is_degraded(apps: list[App]) -> None:
    ticks = itertools.count(step=0.2)  # every clock read 200 ms later: a 200 ms PING
    check = redis_check(apps[0].client, slow_ping_ms=50, clock=lambda: next(ticks))
    result = await check()
    assert result.status is HealthStatus.DEGRADED and result.latency_ms == pytest.approx(200)


async def test_export_refused_while_redis_is_out_works_as_soon_as_it_answers_again(
    apps: list[App], aof_redis: EmbeddedRedis, mono: FakeClock
) -> None:
    # A timeout under load degrades the store; an export asked for right after Redis answers
    # again must not be refused until the background loop notices: it tries Redis itself,
    # replays the journal first, and exports everything.
    store = apps[0].store
    conv = await store.create("alice", "export")
    await store.add_message(conv, "user", "before")
    aof_redis.kill()
    await store.add_message(conv, "user", "while down")
    assert store.reads_from_cache
    with pytest.raises(ServiceUnavailableError, match="export needs Redis"):
        await store.export_json(conv)
    assert store.pending_writes == 1  # a refused export loses nothing
    aof_redis.start()
    mono.advance(5)  # past the breaker's recovery timeout; the background loop is not running
    document = json.loads(await store.export_json(conv))
    assert [m["content"] for m in document["messages"]] == ["before", "while down"]
    assert not store.degraded and store.pending_writes == 0


async def test_conversation_settings_set_offline_replay(
    apps: list[App], aof_redis: EmbeddedRedis, mono: FakeClock
) -> None:
    """A model or variant picked while Redis is out is journaled, read back from the cache, and
    stored when the journal replays (issue 17)."""
    store = apps[0].store
    conv = await store.create("alice", "settings")
    aof_redis.kill()
    await store.set_setting(conv, "model", "picked-offline")
    assert (await store.get(conv)).settings == {"model": "picked-offline"}
    aof_redis.start()
    mono.advance(5)
    report = await store.replay()
    assert (report.replayed, report.remaining) == (1, 0)
    assert (await store.get(conv)).settings == {"model": "picked-offline"}
