"""Degraded mode: recall says so and the turn goes on; writes queue, persist, and drain."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.memory.embeddings import LocalEmbedder
from runtime.memory.health import check_embeddings, check_memory
from runtime.memory.onnx_minilm import MiniLM
from runtime.memory.store import VectorMemoryStore
from runtime.resilience import HealthStatus


def _break_store_dir(data_dir: Path) -> None:
    # Tests run as root, where chmod cannot make a directory unreadable; a file in place
    # of the table directory makes every open and read fail the same way.
    shutil.move(data_dir / "memory", data_dir / "memory.moved")
    (data_dir / "memory").write_text("not a lance dataset")


def _repair_store_dir(data_dir: Path) -> None:
    (data_dir / "memory").unlink()
    shutil.move(data_dir / "memory.moved", data_dir / "memory")


@pytest.mark.slow
async def test_unreadable_table_dir_degrades_recall_and_queues_writes(
    store: VectorMemoryStore, make_store: Callable[..., VectorMemoryStore], data_dir: Path, clock
) -> None:
    await store.store_memory("alice", "c1", "My dog is called Rex")
    _break_store_dir(data_dir)

    recall = await store.search_memories("what's my pet's name?", "alice")
    assert recall.degraded and recall.memories == () and "memory" in recall.reason
    new_id = await store.store_memory("alice", "c1", "I live in Berlin")
    assert new_id and len(store.queue) == 1
    assert (data_dir / "memory-queue.jsonl").read_text().count("I live in Berlin") == 1
    assert (await check_memory(store)).status is HealthStatus.UNHEALTHY

    # A restart keeps the queued write.
    assert [w.content for w in make_store().queue.items()] == ["I live in Berlin"]

    _repair_store_dir(data_dir)
    clock.now += 3600  # past the memory breaker's recovery timeout
    health = await check_memory(store)
    assert health.status is HealthStatus.HEALTHY
    await store.wait_idle()
    assert len(store.queue) == 0 and not (data_dir / "memory-queue.jsonl").exists()
    assert sorted(m.content for m in await store.list("alice")) == ["I live in Berlin", "My dog is called Rex"]
    recall = await store.search_memories("which city do I live in?", "alice")
    assert not recall.degraded and recall.memories[0].content == "I live in Berlin"


async def test_failing_embedding_provider_degrades_to_lexical_and_queues_writes(
    make_store: Callable[..., VectorMemoryStore], local_embedder: LocalEmbedder, tmp_path: Path
) -> None:
    healthy = make_store()
    await healthy.store_memory("alice", "c1", "My dog is called Rex")
    await healthy.store_memory("alice", "c1", "I live in Berlin")

    broken = LocalEmbedder()
    broken.function._model = MiniLM(model_file=tmp_path / "missing.onnx", expected_sha256="0" * 64)
    store = make_store(embedder=broken)
    recall = await store.search_memories("is my dog called Rex?", "alice")
    assert recall.degraded and recall.source == "lexical"
    assert [m.content for m in recall.memories] == ["My dog is called Rex"]
    assert (await store.search_memories("pet name", "alice")).degraded

    await store.store_memory("alice", "c1", "I prefer tea over coffee")
    assert len(store.queue) == 1
    assert (await check_embeddings(store)).status is HealthStatus.UNHEALTHY

    # The provider comes back (same table, same model): the queued write drains.
    store.embedder = local_embedder
    assert await store.drain() == 1
    assert await store.count("alice") == 3
