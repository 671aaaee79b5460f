"""Benchmarks for issue 19: message append and tail-read throughput on a real 3-primary +
3-replica Redis Cluster against one redis-server, in the same run and the same binary; and the
breaker-spread latency (a breaker opens in process A -> the same breaker open in process B over
pub/sub), p95 must be at most 1 s.

Run: .venv/bin/python -m pytest tests/bench/bench_cluster.py -o addopts="" -o python_files="bench_*.py" -s
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.core.events import EventBus
from runtime.resilience import Resilience
from runtime.resilience.breaker import CircuitState
from runtime.state.breaker_sync import BreakerSync
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.embedded_redis import EmbeddedRedis
from runtime.state.store import RedisStateStore
from tests.support.cluster import RedisClusterFixture

pytestmark = pytest.mark.bench

N = 2000
WRITERS = 50


async def _throughput(url: str, journal: Path) -> dict[str, float]:
    client = make_redis_client(url)
    runner = RedisRunner(client, Resilience().guard("redis"))
    store = ConversationStore(runner, RedisConfig(key_prefix="b"), journal_dir=journal)
    try:
        convs = [await store.create(f"u{i}") for i in range(WRITERS)]
        start = time.perf_counter()
        for i in range(N):
            await store.add_message(convs[0], "user", f"sequential {i}")
        seq_append = N / (time.perf_counter() - start)

        per = N // WRITERS

        async def writer(conv: str) -> None:
            for i in range(per):
                await store.add_message(conv, "user", f"concurrent {i}")

        start = time.perf_counter()
        await asyncio.gather(*(writer(c) for c in convs))
        conc_append = per * WRITERS / (time.perf_counter() - start)

        # Tail reads from a second store (cold cache), as another process would.
        reader = ConversationStore(runner, RedisConfig(key_prefix="b"), journal_dir=journal / "r")
        start = time.perf_counter()
        for i in range(N // 4):
            await reader.read_tail(convs[i % WRITERS], 20, before_seq=per)
        tail = (N // 4) / (time.perf_counter() - start)
        await reader.close()
        return {"append/s (1 writer)": seq_append, f"append/s ({WRITERS} writers)": conc_append, "tail read/s": tail}
    finally:
        await store.close()
        await client.aclose()


async def test_append_and_tail_read_cluster_vs_single(
    redis_server: EmbeddedRedis, redis_cluster: RedisClusterFixture, tmp_path: Path
) -> None:
    redis_server.start()
    single = await _throughput(redis_server.url, tmp_path / "j1")
    cluster = await _throughput(redis_cluster.url, tmp_path / "j2")
    print("\n| operation | one redis-server | cluster (3 primaries + 3 replicas) | ratio |")
    print("|---|---|---|---|")
    for name, value in single.items():
        print(f"| {name} | {value:,.0f} | {cluster[name]:,.0f} | {cluster[name] / value:.2f} |")


async def test_breaker_spread_p95_is_under_one_second(redis_cluster: RedisClusterFixture) -> None:
    procs = []
    for _name in ("A", "B"):
        bus = EventBus()
        res = Resilience(bus=bus)
        client = make_redis_client(redis_cluster.url)
        runner = RedisRunner(client, res.guard("redis"))
        sync = BreakerSync(RedisStateStore(runner, key_prefix="b"), runner, res.breakers, bus, key_prefix="b")
        assert await sync.start()
        procs.append((res, sync, client))
    (a, _sync_a, _), (b, _, _) = procs
    spreads = []
    try:
        for _ in range(50):
            start = time.perf_counter()
            a.breakers.get("llm").trip("bench")
            while b.breakers.get("llm").state is not CircuitState.OPEN:
                assert time.perf_counter() - start < 5, f"B never opened (trip {len(spreads)})"
                await asyncio.sleep(0.0005)
            spreads.append(time.perf_counter() - start)
            a.breakers.get("llm").force_closed("bench")
            closing = time.perf_counter()
            while b.breakers.get("llm").state is not CircuitState.CLOSED:
                assert time.perf_counter() - closing < 5, f"B never closed (trip {len(spreads)})"
                await asyncio.sleep(0.0005)
    finally:
        for _, sync, client in procs:
            try:
                # Known issue (issue 19 report): after 50 trips a stop has hung here; bounded and said.
                async with asyncio.timeout(5):
                    await sync.stop()
            except TimeoutError:
                print("\nBreakerSync.stop did not finish within 5 s")
            await client.aclose()
    spreads.sort()
    p50, p95 = statistics.median(spreads), spreads[int(len(spreads) * 0.95) - 1]
    print(
        f"\nbreaker spread over 50 trips: p50 {p50 * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms, max {spreads[-1] * 1000:.2f} ms"
    )
    assert p95 <= 1.0
