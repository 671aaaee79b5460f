"""Fixtures for the state tests: a guarded runner on the real redis-server and fake clocks
(``mono`` for monotonic time, ``wall`` for epoch time; both FakeClocks whose ``sleep`` advances
them). Helpers the tests import live in ``tests/support/state.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.core.events import Event, EventBus
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.sessions import SessionManager
from runtime.state.store import RedisStateStore
from tests.support.clock import FakeClock
from tests.support.state import RunnerFactory, fast_resilience


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
