"""Benchmarks for runtime/state: round trips per operation, append and tail-read throughput
against raw redis-py SET/GET on the same server, and the spec's JSON read-modify-write
conversation (1k and 10k messages, and under 50 concurrent writers) as the baseline.

Run: .venv/bin/python -m pytest tests/bench/bench_state.py -o addopts="" -s
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import Connection

from runtime.config import RedisConfig
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.sessions import SessionManager

pytestmark = pytest.mark.bench


class CountingConnection(Connection):
    sent = 0

    async def send_packed_command(self, command: object, check_health: bool = True) -> None:
        type(self).sent += 1
        await super().send_packed_command(command, check_health)


async def _rate(n: int, op: Callable[[int], Awaitable[Any]]) -> float:
    """Sequential operations per second (one caller, so latency-bound like a chat turn)."""
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    return n / (time.perf_counter() - start)


class SpecConversation:
    """The spec's ConversationContext storage, for comparison only: one JSON blob per
    conversation, read, appended to and written back on every message."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def add_message(self, conv: str, role: str, content: str) -> None:
        key = f"context:{conv}"
        raw = await self.client.get(key)
        context = json.loads(raw) if raw else {"messages": [], "turn_count": 0}
        context["messages"].append({"role": role, "content": content, "metadata": {}})
        context["turn_count"] += 1
        await self.client.set(key, json.dumps(context), ex=86400)

    async def tail(self, conv: str, n: int) -> list[dict[str, Any]]:
        raw = await self.client.get(f"context:{conv}")
        return json.loads(raw)["messages"][-n:]


@pytest.mark.timeout(900)
async def test_bench_state(redis_url: str, tmp_path: Path) -> None:
    client = make_redis_client(redis_url, connection_class=CountingConnection)
    raw = make_redis_client(redis_url)
    runner = RedisRunner(client, Resilience().guard("redis"))
    store = ConversationStore(runner, RedisConfig(key_prefix="b"), journal_dir=tmp_path / "journal")
    sessions = SessionManager(runner, key_prefix="b")
    spec = SpecConversation(raw)
    text = "The quick brown fox jumps over the lazy dog. " * 4  # a typical ~180 character chat message
    try:
        # ---------------------------------------------------------- round trips
        conv = await store.create("bench")
        for _ in range(3):
            await store.add_message(conv, "user", text)
        session = await sessions.create_session("bench")
        await sessions.get_session(session.id)
        await store.read_tail(conv, 2, before_seq=2)  # scripts loaded
        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "session get": lambda: sessions.get_session(session.id),
            "session update": lambda: sessions.update_session(session.id, {"k": 1}),
            "append": lambda: store.add_message(conv, "user", text),
            "tail read (newest 50)": lambda: store.read_tail(conv, 50),
            "tail read (before_seq)": lambda: store.read_tail(conv, 50, before_seq=3),
            "list conversations": lambda: store.list_conversations("bench"),
        }
        print("\n== round trips per operation (packets sent to Redis, scripts already loaded)")
        for name, op in ops.items():
            await op()  # the first call of a script also loads it
            before = CountingConnection.sent
            await op()
            print(f"  {name:<24} {CountingConnection.sent - before}")

        # ---------------------------------------------------------- throughput vs raw redis-py
        n = 1000
        await raw.set("raw:k", text)
        set_rate = await _rate(n, lambda i: raw.set("raw:k", text))
        get_rate = await _rate(n, lambda i: raw.get("raw:k"))
        conv2 = await store.create("bench")
        append_rate = await _rate(n, lambda i: store.add_message(conv2, "user", text))
        tail_rate = await _rate(n, lambda i: store.read_tail(conv2, 20))
        print(f"\n== throughput, one sequential caller, {n} ops each, same server")
        print(f"  raw redis-py SET        {set_rate:9.0f} ops/s")
        print(f"  store append            {append_rate:9.0f} ops/s   ratio to SET {append_rate / set_rate:.2f}")
        print(f"  raw redis-py GET        {get_rate:9.0f} ops/s")
        print(f"  store tail read (20)    {tail_rate:9.0f} ops/s   ratio to GET {tail_rate / get_rate:.2f}")

        # ---------------------------------------------------------- the spec's JSON blob as baseline
        print("\n== append and tail read with history already holding N messages")
        print(
            f"  {'N':>6} {'spec RMW append':>16} {'store append':>13} {'speedup':>8}"
            f" {'spec tail':>10} {'store tail':>11} {'speedup':>8}"
        )
        for size in (1000, 10_000):
            sconv, oconv = f"spec{size}", await store.create("bench")
            blob = {"messages": [{"role": "user", "content": text, "metadata": {}}] * size, "turn_count": size}
            await raw.set(f"context:{sconv}", json.dumps(blob), ex=86400)
            for i in range(0, size, 500):
                await asyncio.gather(*(store.add_message(oconv, "user", text) for _ in range(min(500, size - i))))
            reps = 200 if size == 1000 else 40
            spec_append = await _rate(reps, lambda i: spec.add_message(sconv, "user", text))
            ours_append = await _rate(reps, lambda i: store.add_message(oconv, "user", text))
            spec_tail = await _rate(reps, lambda i: spec.tail(sconv, 20))
            ours_tail = await _rate(reps, lambda i: store.read_tail(oconv, 20))
            print(
                f"  {size:>6} {spec_append:>12.0f} /s {ours_append:>9.0f} /s {ours_append / spec_append:>7.1f}x"
                f" {spec_tail:>6.0f} /s {ours_tail:>7.0f} /s {ours_tail / spec_tail:>7.1f}x"
            )

        print("\n== 50 concurrent writers x 100 appends to one conversation")
        sconv, oconv = "spec-concurrent", await store.create("bench")

        async def writers(append: Callable[[int, int], Awaitable[Any]]) -> float:
            async def one(w: int) -> None:
                for i in range(100):
                    await append(w, i)

            start = time.perf_counter()
            await asyncio.gather(*(one(w) for w in range(50)))
            return time.perf_counter() - start

        spec_s = await writers(lambda w, i: spec.add_message(sconv, "user", f"w{w}:{i}"))
        ours_s = await writers(lambda w, i: store.add_message(oconv, "user", f"w{w}:{i}"))
        spec_kept = len(json.loads(await raw.get(f"context:{sconv}"))["messages"])
        ours_kept = (await store.get(oconv)).message_count
        print(f"  spec read-modify-write  kept {spec_kept:>5} of 5000 in {spec_s:5.2f}s")
        print(f"  store append            kept {ours_kept:>5} of 5000 in {ours_s:5.2f}s")
    finally:
        await client.aclose()
        await raw.aclose()
