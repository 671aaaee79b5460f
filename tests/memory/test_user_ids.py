"""The memory store refuses a bad user id at every door (the one rule, runtime.core.ids), and a
write that can never apply (a NUL-byte id queued by an older version, found by the storage
issue) goes to the dead-letter file with its reason, is reported by the memory health check, and
never blocks the writes behind it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.core.errors import ValidationError
from runtime.memory.health import check_memory
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


async def test_a_queued_write_that_can_never_apply_goes_to_the_dead_letter_file_and_does_not_block_the_queue(
    make_store: Callable[..., VectorMemoryStore], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An older version queued a write for a user id with a NUL byte, then one for bob.
    older = WriteQueue(data_dir / "memory-queue.jsonl")
    older.push(PendingWrite(op="store", user_id="a\x00b", id="m_bad", content="poison", created_at=1.0))
    older.push(PendingWrite(op="store", user_id="bob", id="m_bob", content="I play the cello", created_at=2.0))
    store = make_store()
    assert len(store.queue) == 2

    with caplog.at_level(logging.WARNING, logger="runtime.memory"):
        await store.store_memory("alice", "c1", "I live in Berlin")

    # Nothing waits behind the poison: bob's older write and alice's new one are stored.
    assert len(store.queue) == 0 and not (data_dir / "memory-queue.jsonl").exists()
    assert [m.content for m in await store.list("alice")] == ["I live in Berlin"]
    assert [m.content for m in await store.list("bob")] == ["I play the cello"]
    assert await store.count() == 2
    # The poison is kept, with why, in the dead-letter file beside the queue ...
    dead = [json.loads(line) for line in (data_dir / "memory-dead-letter.jsonl").read_text().splitlines()]
    assert [(d["write"]["id"], d["write"]["user_id"], d["write"]["content"]) for d in dead] == [
        ("m_bad", "a\x00b", "poison")
    ]
    assert "NUL byte" in dead[0]["reason"]
    # ... reported in the log and by the health check, and still counted after a restart.
    assert any(
        "can never apply" in r.getMessage() and "memory-dead-letter.jsonl" in r.getMessage() for r in caplog.records
    )
    report = await check_memory(store)
    assert report.details["dead_letters"] == 1
    assert report.details["dead_letter_file"] == str(data_dir / "memory-dead-letter.jsonl")
    assert make_store().queue.dead_letters == 1


async def test_a_new_write_that_can_never_apply_fails_its_writer_and_is_not_dead_lettered(
    make_store: Callable[..., VectorMemoryStore], data_dir: Path
) -> None:
    # A write queued during an outage, so the next writes take the queue's path.
    WriteQueue(data_dir / "memory-queue.jsonl").push(
        PendingWrite(op="store", user_id="bob", id="m_bob", content="I play the cello", created_at=2.0)
    )
    store = make_store()
    with pytest.raises(ValidationError, match="a memory needs some content"):
        await store.store_memory("alice", "c1", "   ")
    await store.store_memory("alice", "c1", "I live in Berlin")
    assert len(store.queue) == 0 and store.queue.dead_letters == 0
    assert not (data_dir / "memory-dead-letter.jsonl").exists()


async def test_a_queue_holding_only_a_poisoned_write_is_emptied_on_disk(
    make_store: Callable[..., VectorMemoryStore], data_dir: Path
) -> None:
    WriteQueue(data_dir / "memory-queue.jsonl").push(
        PendingWrite(op="store", user_id="a\x00b", id="m_bad", content="poison", created_at=1.0)
    )
    store = make_store()
    assert await store.drain() == 0
    assert len(store.queue) == 0 and not (data_dir / "memory-queue.jsonl").exists()
    assert store.queue.dead_letters == 1 and make_store().queue.dead_letters == 1
