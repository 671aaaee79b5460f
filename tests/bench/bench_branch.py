"""Benchmark for branches (issue 17): branching a 10,000-message conversation against copying its
messages into a new conversation, in the same run on the same redis-server; the Redis memory each
takes; the round trips of opening a branch (its shared prefix and its own messages in one).

Targets: a branch in <= 5 ms; its memory O(1) in the parent's length (the same for 100 and 10,000
messages); opening it one round trip per page.

Run: .venv/bin/python -m pytest tests/bench/bench_branch.py -o addopts="-q -p no:cacheprovider" \
    -o python_files="bench_*.py" -s
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.config import RedisConfig
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.keys import Keys
from tests.support.state import CountingConnection

pytestmark = pytest.mark.bench

N = 10_000
PREFIX = "b"
TEXT = "The quick brown fox jumps over the lazy dog. " * 4  # a typical ~180 character chat message

# The fastest copy there is, for the baseline: server-side, in one script, no bytes through the
# client (KEYS: source meta, messages, ids; target meta, messages, ids, all in one slot).
_COPY = """
local items = redis.call('LRANGE', KEYS[2], 0, -1)
for i = 1, #items, 500 do
  redis.call('RPUSH', KEYS[5], unpack(items, i, math.min(i + 499, #items)))
end
local ids = redis.call('HGETALL', KEYS[3])
for i = 1, #ids, 1000 do
  redis.call('HSET', KEYS[6], unpack(ids, i, math.min(i + 999, #ids)))
end
redis.call('HSET', KEYS[4], unpack(redis.call('HGETALL', KEYS[1])))
return #items
"""


async def _fill(store: ConversationStore, conv: str, n: int) -> None:
    """``n`` messages through the store's own append script, one after another."""
    for i in range(n):
        await store.add_message(conv, "user" if i % 2 == 0 else "assistant", f"{i} {TEXT}")


async def _memory(raw: Any, keys: list[str]) -> int:
    total = 0
    for key in keys:
        total += int(await raw.memory_usage(key, samples=0) or 0)
    return total


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.3f} ms   max {max(samples) * 1000:7.3f} ms"


@pytest.mark.timeout(900)
async def test_bench_branch(redis_url: str, tmp_path: Path) -> None:
    client = make_redis_client(redis_url, connection_class=CountingConnection)
    raw = make_redis_client(redis_url)
    runner = RedisRunner(client, Resilience().guard("redis"))
    store = ConversationStore(runner, RedisConfig(key_prefix=PREFIX), journal_dir=tmp_path / "journal")
    keys = Keys(PREFIX)
    try:
        big = await store.create("bench", "ten thousand")
        small = await store.create("bench", "one hundred")
        started = time.perf_counter()
        await _fill(store, big, N)
        await _fill(store, small, 100)
        print(f"\n== filled {N:,} + 100 messages in {time.perf_counter() - started:.1f}s")

        # ------------------------------------------------------------ time
        await store.branch(big, 10, user_id="bench")  # scripts loaded
        sent = CountingConnection.sent
        await store.branch(big, 12, user_id="bench")
        branch_trips = CountingConnection.sent - sent
        branch_s: list[float] = []
        branch_ids: list[str] = []
        for i in range(50):
            at = N - 2 - 2 * (i % 100)  # an edit of one of the last user messages
            t0 = time.perf_counter()
            branch_ids.append(await store.branch(big, at, user_id="bench"))
            branch_s.append(time.perf_counter() - t0)
        copy = client.register_script(_COPY)
        copy_s: list[float] = []
        copies: list[str] = []
        for i in range(5):
            target = f"{big}_copy{i}"  # same slot as the source: the copy's best case
            t0 = time.perf_counter()
            await copy(
                keys=[
                    keys.conv_meta(big),
                    keys.conv_messages(big),
                    keys.conv_ids(big),
                    f"{PREFIX}:{{conv:{big}}}:copy{i}:meta",
                    f"{PREFIX}:{{conv:{big}}}:copy{i}:messages",
                    f"{PREFIX}:{{conv:{big}}}:copy{i}:ids",
                ],
                args=[],
            )
            copy_s.append(time.perf_counter() - t0)
            copies.append(target)
        # The copy a client would do through the store: read every message, append each.
        t0 = time.perf_counter()
        naive = await store.create("bench", "client copy")
        history = await store.read_tail(big, N)
        for message in history:
            await store.append(naive, message.with_updates(seq=None))
        naive_s = time.perf_counter() - t0
        assert len(await store.read_tail(naive, N)) == N

        print(f"\n== branch vs copy of a {N:,}-message conversation (same run, same server)")
        print(f"  branch (store.branch, {branch_trips} round trips)   {_ms(branch_s)}")
        print(f"  copy, server-side Lua (fastest copy)   {_ms(copy_s)}")
        print(f"  copy through the store (read + append) {naive_s * 1000:7.0f} ms")
        print(
            f"  ratio copy (Lua) / branch              {statistics.median(copy_s) / statistics.median(branch_s):7.1f}x"
        )

        # ------------------------------------------------------------ memory
        def conv_keys(conv: str) -> list[str]:
            return keys.conv_all(conv)

        branch_of_big = branch_ids[0]
        branch_of_small = await store.branch(small, 98, user_id="bench")
        mem_branch_big = await _memory(raw, conv_keys(branch_of_big))
        mem_branch_small = await _memory(raw, conv_keys(branch_of_small))
        mem_copy = await _memory(raw, [f"{PREFIX}:{{conv:{big}}}:copy0:{part}" for part in ("meta", "messages", "ids")])
        mem_naive = await _memory(raw, conv_keys(naive))
        before = int((await raw.info("memory"))["used_memory"])
        await store.branch(big, N - 2, user_id="bench")
        after_branch = int((await raw.info("memory"))["used_memory"])
        await copy(
            keys=[
                keys.conv_meta(big),
                keys.conv_messages(big),
                keys.conv_ids(big),
                f"{PREFIX}:{{conv:{big}}}:copyx:meta",
                f"{PREFIX}:{{conv:{big}}}:copyx:messages",
                f"{PREFIX}:{{conv:{big}}}:copyx:ids",
            ],
            args=[],
        )
        after_copy = int((await raw.info("memory"))["used_memory"])
        print("\n== Redis memory (MEMORY USAGE of every key of the new conversation)")
        print(f"  branch of the {N:,}-message conversation {mem_branch_big:>10,} bytes")
        print(f"  branch of a 100-message conversation   {mem_branch_small:>10,} bytes")
        print(f"  copy (Lua) of the {N:,} messages        {mem_copy:>10,} bytes")
        print(f"  copy through the store                 {mem_naive:>10,} bytes")
        print(
            f"  INFO used_memory delta: branch {after_branch - before:,} bytes, copy {after_copy - after_branch:,} bytes"
        )

        # ------------------------------------------------------------ round trips
        for _ in range(3):
            await store.add_message(branch_of_big, "user", TEXT)
        reader = ConversationStore(
            RedisRunner(make_redis_client(redis_url, connection_class=CountingConnection), Resilience().guard("redis")),
            RedisConfig(key_prefix=PREFIX),
            journal_dir=tmp_path / "reader",
        )
        await reader.get_summary(big)  # connection open
        await reader.read_recent(big, 1)  # scripts loaded (the first call of a script loads it)
        await reader.read_tail(big, 1, before_seq=5)
        sent = CountingConnection.sent
        t0 = time.perf_counter()
        _, page = await reader.read_recent(branch_of_big, 50)
        open_s = time.perf_counter() - t0
        open_trips = CountingConnection.sent - sent
        sent = CountingConnection.sent
        older = await reader.read_tail(branch_of_big, 50, before_seq=page[0].seq)
        page_trips = CountingConnection.sent - sent
        print("\n== opening a branch (newest 50: 47 shared + 3 of its own), then the page before it")
        print(f"  open   {open_trips} round trip(s), {open_s * 1000:.2f} ms, {len(page)} messages")
        print(f"  older  {page_trips} round trip(s), {len(older)} messages")

        assert statistics.median(branch_s) <= 0.005
        # O(1) in the parent's length: only the digits of the numbers and the title differ.
        assert abs(mem_branch_big - mem_branch_small) < 64
        assert mem_branch_big * 100 < mem_copy
        assert (open_trips, page_trips) == (1, 1)
        assert [m.seq for m in page] == list(range(N - 48, N + 2))  # 9952..9998 shared, then its own
        assert len(older) == 50
    finally:
        await client.aclose()
        await raw.aclose()
