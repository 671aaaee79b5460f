"""Fixtures for the state tests: a guarded runner on the real redis-server and fake clocks
(``mono`` for monotonic time, ``wall`` for epoch time; both FakeClocks whose ``sleep`` advances
them). Helpers the tests import live in ``tests/support/state.py``.

Every test that uses ``redis_url`` runs twice: against one redis-server (``[single]``) and
against a real 3-primary + 3-replica Redis Cluster (``[cluster]``, a ``redis+cluster://`` URL).
A test that needs one server's process or admin commands is marked ``single_redis``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from runtime.config import RedisConfig
from runtime.core.events import Event, EventBus
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.embedded_redis import EmbeddedRedis
from runtime.state.sessions import SessionManager
from runtime.state.store import RedisStateStore
from tests.support.clock import FakeClock
from tests.support.cluster import RedisClusterFixture
from tests.support.state import RunnerFactory, fast_resilience


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "single_redis: the test needs one redis-server, not a cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("single_redis") is None:
        metafunc.parametrize("redis_backend", ["single", "cluster"], indirect=True)


@pytest.fixture
def redis_url(redis_backend: str, request: pytest.FixtureRequest) -> str:
    """A flushed Redis: the run's one server (restarted if a test killed it) or the run's cluster."""
    if redis_backend == "cluster":
        cluster: RedisClusterFixture = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        return cluster.url
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    server.start()
    with RedisClusterFixture.client(server) as admin:
        admin.flushall()
    return server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[object]:
    """A raw client (single server or cluster, as the URL says) for checking what was stored."""
    client = make_redis_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def mono() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def bus(events: list[Event]) -> EventBus:
    bus = EventBus()
    bus.add_listener(events.append)
    return bus


@pytest.fixture
def resilience(bus: EventBus, mono: FakeClock) -> Resilience:
    return Resilience(fast_resilience(), bus, clock=mono, sleep=mono.sleep)


@pytest.fixture
async def make_runner(resilience: Resilience) -> AsyncIterator[RunnerFactory]:
    clients = []

    def make(url: str, **kwargs: object) -> RedisRunner:
        client = make_redis_client(url, **kwargs)
        clients.append(client)
        return RedisRunner(client, resilience.guard("redis"))

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def runner(redis_url: str, make_runner: RunnerFactory) -> RedisRunner:
    return make_runner(redis_url)


@pytest.fixture
def state(runner: RedisRunner, mono: FakeClock) -> RedisStateStore:
    return RedisStateStore(runner, key_prefix="t", clock=mono, sleep=mono.sleep)


@pytest.fixture
def sessions(runner: RedisRunner, wall: FakeClock) -> SessionManager:
    return SessionManager(runner, key_prefix="t", default_ttl=3600, max_ttl=86400, clock=wall)


@pytest.fixture
def journal_dir(data_dir: Path) -> Path:
    return data_dir / "journal"


@pytest.fixture
async def conversations(
    runner: RedisRunner, journal_dir: Path, bus: EventBus, wall: FakeClock, mono: FakeClock
) -> AsyncIterator[ConversationStore]:
    store = ConversationStore(
        runner,
        RedisConfig(key_prefix="t"),
        journal_dir=journal_dir,
        bus=bus,
        clock=wall,
        monotonic=mono,
        sleep=mono.sleep,
    )
    yield store
    await store.close()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the one redis-server for CONFIG (``single_redis`` tests); puts the
    memory limit and policy back whatever the test did."""
    client = aioredis.from_url(redis_url)
    old = await client.config_get("maxmemory*")
    try:
        yield client
    finally:
        await client.config_set("maxmemory", old["maxmemory"])
        await client.config_set("maxmemory-policy", old["maxmemory-policy"])
        await client.aclose()
