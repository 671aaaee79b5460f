"""The decoded-tail cache of ConversationStore stays correct across processes: two stores on the
same real redis-server stand for two processes writing one conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.state.conversations import ConversationStore
from tests.support.state import CountingConnection, RunnerFactory


@pytest.fixture
async def pair(
    redis_url: str, make_runner: RunnerFactory, tmp_path: Path
) -> AsyncIterator[tuple[ConversationStore, ConversationStore]]:
    a = ConversationStore(
        make_runner(redis_url, connection_class=CountingConnection),
        RedisConfig(key_prefix="t"),
        journal_dir=tmp_path / "a",
    )
    b = ConversationStore(make_runner(redis_url), RedisConfig(key_prefix="t"), journal_dir=tmp_path / "b")
    yield a, b
    await a.close()
    await b.close()


async def _fill(store: ConversationStore, conv: str, n: int, tag: str) -> None:
    for i in range(n):
        await store.add_message(conv, "user" if i % 2 == 0 else "assistant", f"{tag}{i}")


async def test_another_process_append_is_seen(pair: tuple[ConversationStore, ConversationStore]) -> None:
    a, b = pair
    conv = await a.create("alice")
    await _fill(a, conv, 6, "a")
    assert [m.content for m in await a.read_tail(conv, 4)] == ["a2", "a3", "a4", "a5"]
    await _fill(b, conv, 3, "b")  # the other process appends
    await a.add_message(conv, "user", "a-last")  # and this one again, after it
    tail = await a.read_tail(conv, 5)
    assert [m.content for m in tail] == ["a5", "b0", "b1", "b2", "a-last"]
    assert [m.seq for m in tail] == [5, 6, 7, 8, 9]
    # Paging back from the cached run gives the same as a store that never cached anything.
    assert await a.read_tail(conv, 3, before_seq=7) == await b.read_tail(conv, 3, before_seq=7)


async def test_more_new_messages_than_asked_still_gives_the_newest(
    pair: tuple[ConversationStore, ConversationStore],
) -> None:
    a, b = pair
    conv = await a.create("alice")
    await _fill(a, conv, 3, "a")
    await a.read_tail(conv, 3)
    await _fill(b, conv, 20, "b")
    assert [m.content for m in await a.read_tail(conv, 4)] == ["b16", "b17", "b18", "b19"]
    # A wider read afterwards fills in what the narrow one skipped.
    wide = await a.read_tail(conv, 30)
    assert [m.seq for m in wide] == list(range(23))


async def test_summary_swap_by_another_process_invalidates(pair: tuple[ConversationStore, ConversationStore]) -> None:
    a, b = pair
    conv = await a.create("alice")
    await _fill(a, conv, 10, "m")
    summary, tail = await a.read_recent(conv, 8)
    assert summary is None and len(tail) == 8
    covered = (await b.read_tail(conv, 10))[5]
    await b.summarize(conv, "the first six", covered.id)  # archives seq 0..5
    summary, tail = await a.read_recent(conv, 8)
    assert summary is not None and summary.text == "the first six" and summary.covered_count == 6
    assert [m.content for m in tail] == ["m6", "m7", "m8", "m9"]
    assert await a.read_tail(conv, 4, before_seq=8) == [m for m in tail if m.seq is not None and m.seq < 8]
    assert await a.get_summary(conv) == summary


async def test_recreated_conversation_is_not_served_from_the_old_cache(
    pair: tuple[ConversationStore, ConversationStore],
) -> None:
    a, b = pair
    conv = await a.create("alice")
    await _fill(a, conv, 4, "old")
    await a.read_tail(conv, 4)
    await b.delete(conv)
    await b.create("alice", conversation_id=conv)
    await _fill(b, conv, 5, "new")
    assert [m.content for m in await a.read_tail(conv, 10)] == ["new0", "new1", "new2", "new3", "new4"]


# Counts packets on one server's connections (the cluster client builds its own per node).
@pytest.mark.single_redis
async def test_a_warm_tail_read_is_one_round_trip_and_decodes_only_new_messages(
    pair: tuple[ConversationStore, ConversationStore],
) -> None:
    a, b = pair
    conv = await a.create("alice")
    await _fill(b, conv, 300, "m")
    first = await a.read_recent(conv, 256)
    before = CountingConnection.sent
    again = await a.read_recent(conv, 256)
    assert CountingConnection.sent - before == 1
    # The same decoded objects come back: nothing was decoded again.
    assert all(x is y for x, y in zip(first[1], again[1], strict=True))
