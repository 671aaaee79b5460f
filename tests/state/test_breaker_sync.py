"""Breakers that learn from each other (issue 19): two processes' resilience stacks on one Redis
(one server, and a real cluster) and one dead HTTP backend that counts who calls it.

Each "process" has its own EventBus, breakers, Redis client and BreakerSync, as two Holdfast
processes would; only Redis joins them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.core.errors import CircuitOpenError, ServiceUnavailableError
from runtime.core.events import EventBus
from runtime.resilience import Resilience
from runtime.resilience.breaker import CircuitState
from runtime.state.breaker_sync import BreakerSync
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.store import RedisStateStore
from tests.support.polling import wait_for


@dataclass
class CountingBackend:
    """A real HTTP server: 503 while ``down``, else 200; counts requests per ``X-Proc`` header."""

    down: bool = True
    calls: dict[str, int] = field(default_factory=dict)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        proc = next((ln.split(":", 1)[1].strip() for ln in head.split("\r\n") if ln.lower().startswith("x-proc:")), "?")
        self.calls[proc] = self.calls.get(proc, 0) + 1
        status = b"503 Service Unavailable" if self.down else b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def backend() -> AsyncIterator[CountingBackend]:
    b = CountingBackend()
    server = await asyncio.start_server(b.handle, "127.0.0.1", 0)
    b.port = server.sockets[0].getsockname()[1]
    yield b
    server.close()
    await server.wait_closed()


def _llm_settings() -> ResilienceConfig:
    llm = ServiceResilience(
        max_attempts=1,
        failure_threshold=3,
        minimum_calls=3,
        recovery_timeout=0.5,
        success_threshold=1,
        timeout=2.0,
        deadline=5.0,
    )
    return ResilienceConfig(llm=llm)


@dataclass
class Process:
    """One process's view: its resilience stack, its Redis client and its BreakerSync."""

    name: str
    resilience: Resilience
    sync: BreakerSync
    runner: RedisRunner
    http: httpx.AsyncClient

    async def call(self, backend: CountingBackend) -> None:
        async def fetch() -> None:
            reply = await self.http.get(f"http://127.0.0.1:{backend.port}/models", headers={"X-Proc": self.name})
            if reply.status_code != 200:
                raise ServiceUnavailableError(f"LLM answered {reply.status_code}", service="llm")

        await self.resilience.guard("llm").call(fetch)

    @property
    def breaker_state(self) -> CircuitState:
        return self.resilience.breakers.get("llm").state


@pytest.fixture
async def processes(redis_url: str) -> AsyncIterator[list[Process]]:
    made: list[Process] = []
    for name in ("A", "B"):
        bus = EventBus()
        res = Resilience(_llm_settings(), bus)
        client = make_redis_client(redis_url)
        runner = RedisRunner(client, res.guard("redis"))
        store = RedisStateStore(runner, key_prefix="t")
        sync = BreakerSync(store, runner, res.breakers, bus, key_prefix="t", lease_seconds=1.0, instance=name)
        assert await sync.start()
        made.append(Process(name, res, sync, runner, httpx.AsyncClient()))
    yield made
    for p in made:
        await p.sync.stop()
        await p.http.aclose()
        await p.runner.client.aclose()


async def _fail_until_open(p: Process, backend: CountingBackend) -> None:
    while p.breaker_state is not CircuitState.OPEN:
        with pytest.raises((ServiceUnavailableError, CircuitOpenError)):
            await p.call(backend)


async def test_a_peer_rejects_without_a_request_once_one_process_opens(
    processes: list[Process], backend: CountingBackend
) -> None:
    a, b = processes
    await _fail_until_open(a, backend)
    opened = time.monotonic()
    await wait_for(lambda: b.breaker_state is CircuitState.OPEN, 1.0, "B's breaker to open after A's")
    spread = time.monotonic() - opened
    assert spread < 1.0
    with pytest.raises(CircuitOpenError):
        await b.call(backend)
    assert backend.calls.get("B", 0) == 0, "B sent a request to a backend A already knew was dead"
    assert backend.calls["A"] == 3


async def test_one_process_probes_the_recovering_backend_and_the_fleet_closes_with_it(
    processes: list[Process], backend: CountingBackend
) -> None:
    a, b = processes
    await _fail_until_open(a, backend)
    await wait_for(lambda: b.breaker_state is CircuitState.OPEN, 1.0, "B's breaker to open")
    backend.down = False
    # Both keep trying through the recovery timeout; only the lease holder (A) may probe.
    while a.breaker_state is not CircuitState.CLOSED:
        for p in (a, b):
            try:
                await p.call(backend)
            except CircuitOpenError:
                pass
        await asyncio.sleep(0.05)  # the pace of a user retrying, not a wait for a condition
    assert backend.calls.get("B", 0) == 0, "a second process probed the recovering backend"
    await wait_for(lambda: b.breaker_state is CircuitState.CLOSED, 1.0, "B's breaker to close after A's")
    await b.call(backend)
    assert backend.calls["B"] == 1


async def test_when_the_prober_goes_away_another_process_takes_over(
    processes: list[Process], backend: CountingBackend
) -> None:
    a, b = processes
    await _fail_until_open(a, backend)
    await wait_for(lambda: b.breaker_state is CircuitState.OPEN, 1.0, "B's breaker to open")
    await a.sync.stop()  # A exits: its lease is given back
    backend.down = False

    async def b_recovers() -> bool:
        try:
            await b.call(backend)
        except CircuitOpenError:
            return False
        return True

    # Lease 1 s (renewal checks every third of it) + recovery timeout 0.5 s.
    await wait_for(b_recovers, 4.0, "B to take over probing and close")
    assert b.breaker_state is CircuitState.CLOSED


async def test_processes_with_their_own_backends_keep_their_breakers_apart(
    redis_url: str, backend: CountingBackend
) -> None:
    """Each process running its own demo LLM has an ``llm`` breaker of the same name but for
    another endpoint: A's dead endpoint must not open B's breaker for a healthy one, while a
    third process on A's endpoint still learns from A."""
    healthy = CountingBackend(down=False)
    server = await asyncio.start_server(healthy.handle, "127.0.0.1", 0)
    healthy.port = server.sockets[0].getsockname()[1]
    made: list[Process] = []
    try:
        for name, scope in (("A", "dead-endpoint"), ("B", "healthy-endpoint"), ("C", "dead-endpoint")):
            bus = EventBus()
            res = Resilience(_llm_settings(), bus)
            client = make_redis_client(redis_url)
            runner = RedisRunner(client, res.guard("redis"))
            store = RedisStateStore(runner, key_prefix="t")
            sync = BreakerSync(
                store,
                runner,
                res.breakers,
                bus,
                key_prefix="t",
                lease_seconds=1.0,
                instance=name,
                scope=lambda n, s=scope: s if n == "llm" else "",
            )
            assert await sync.start()
            made.append(Process(name, res, sync, runner, httpx.AsyncClient()))
        a, b, c = made
        await _fail_until_open(a, backend)
        await wait_for(lambda: c.breaker_state is CircuitState.OPEN, 1.0, "C (same endpoint as A) to open")
        assert c.sync.applied == [("llm", "open")]
        assert b.breaker_state is CircuitState.CLOSED, "another endpoint's outage opened B's breaker"
        assert b.sync.applied == []
        await b.call(healthy)
        assert healthy.calls["B"] == 1
    finally:
        for p in made:
            await p.sync.stop()
            await p.http.aclose()
            await p.runner.client.aclose()
        server.close()
        await server.wait_closed()
