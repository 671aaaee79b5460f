"""Fixtures for the state tests: a guarded runner on the real redis-server, fake clocks,
and a connection class that counts network round trips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio.connection import Connection

from runtime.config import RedisConfig, ResilienceConfig, ServiceResilience
from runtime.core.events import Event, EventBus
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.sessions import SessionManager
from runtime.state.store import RedisStateStore


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # yield so other tasks run; no waiting on the wall clock


class CountingConnection(Connection):
    """Counts packets sent: one per command, one per pipeline (a network round trip each)."""

    sent = 0

    async def send_packed_command(self, command: object, check_health: bool = True) -> None:
        type(self).sent += 1
        await super().send_packed_command(command, check_health)


def fast_resilience() -> ResilienceConfig:
    """The redis guard with tiny retry delays (the fake sleep skips them anyway)."""
    redis = ServiceResilience(
        max_attempts=3,
        initial_delay=0.01,
        max_delay=0.05,
        jitter=False,
        timeout=2.0,
        deadline=30.0,
        recovery_timeout=1.0,
        success_threshold=1,
        max_concurrent=256,
        failure_threshold=5,
        minimum_calls=5,
    )
    return ResilienceConfig(redis=redis)


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


RunnerFactory = Callable[[str], RedisRunner]


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
