"""The memory store refuses a bad user id at every door (the one rule, runtime.core.ids), and a
write that can never apply (a NUL-byte id queued by an older version, found by the storage
issue) is dropped from the write queue instead of blocking it forever."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.core.errors import ValidationError
from runtime.memory.records import PendingWrite
from runtime.memory.store import VectorMemoryStore
from runtime.memory.write_queue import WriteQueue

BAD = ["a\x00b", "", "x" * 129, "alice/bob", "ali\x1bce", " alice", "alice\n"]


@pytest.mark.parametrize("bad", BAD)
async def test_every_memory_api_refuses_a_bad_user_id_and_queues_nothing(store: VectorMemoryStore, bad: str) -> None:
    for call in (
        lambda: store.store_memory(bad, "c1", "My dog is called Rex"),
        lambda: store.search_memories("dog", bad),
        lambda: store.recall(bad, "dog"),
        lambda: store.list(bad),
        lambda: store.count(bad),
        lambda: store.forget(bad, "m_1"),
    ):
        with pytest.raises(ValidationError, match="user_id"):
            await call()
    assert len(store.queue) == 0


async def test_ordinary_ids_store_and_recall(store: VectorMemoryStore) -> None:
    for uid in ("alice", "alice.smith@example.com", "user_42"):
        await store.store_memory(uid, "c1", f"My dog is called Rex-{uid}")
        recall = await store.search_memories("what is my dog called?", uid, min_similarity=-1.0)
        assert [m.content for m in recall.memories] == [f"My dog is called Rex-{uid}"]


async def test_a_queued_write_that_can_never_apply_is_dropped_and_does_not_block_the_queue(
    make_store: Callable[..., VectorMemoryStore], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An older version queued a write for a user id with a NUL byte.
    WriteQueue(data_dir / "memory-queue.jsonl").push(
        PendingWrite(op="store", user_id="a\x00b", id="m_bad", content="poison", created_at=1.0)
    )
    store = make_store()
    assert len(store.queue) == 1

    with caplog.at_level(logging.WARNING, logger="runtime.memory.store"):
        await store.store_memory("alice", "c1", "I live in Berlin")

    assert len(store.queue) == 0 and not (data_dir / "memory-queue.jsonl").exists()
    assert [m.content for m in await store.list("alice")] == ["I live in Berlin"]
    assert any("dropped from the queue" in r.getMessage() for r in caplog.records)
    assert await store.count() == 1
