"""The memory write queue is one file shared by every Holdfast process on a data dir (the TUI,
``holdfast memory add``, ``holdfast serve``): a process that drains or rewrites it removes only
what it applied, so a write another process queued meanwhile is never lost, and a drain applies
every process's queued writes. Found by the storage issue's break test: a TUI drained its own
queued memory and deleted the file under a ``holdfast memory add`` that had queued one and exited
with its id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.config import MemoryConfig
from runtime.memory.embeddings import LexicalEmbedder
from runtime.memory.records import PendingWrite
from runtime.memory.store import VectorMemoryStore
from runtime.memory.write_queue import WriteQueue
from runtime.resilience import Resilience
from tests.support.cli import run_script


def _write(user: str, mid: str, content: str) -> PendingWrite:
    return PendingWrite(op="store", user_id=user, id=mid, content=content, created_at=1.0)


def _on_disk(path: Path) -> list[str]:
    return [json.loads(line)["content"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_process_removing_what_it_applied_keeps_what_another_queued_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "memory-write-queue.jsonl"
    tui, cli = WriteQueue(path), WriteQueue(path)  # two processes, one data dir
    boats = _write("alice", "m_boats", "I sail boats")
    tui.push(boats)
    cli.push(_write("alice", "m_trains", "I like trains"))  # and the CLI exits

    assert [w.content for w in tui.items()] == ["I sail boats", "I like trains"]  # the drain sees both
    tui.remove([boats])

    assert _on_disk(path) == ["I like trains"]
    assert [w.content for w in WriteQueue(path).items()] == ["I like trains"]
    assert len(tui) == 1 and len(cli) == 1


def test_a_write_superseded_by_another_process_is_not_brought_back(tmp_path: Path) -> None:
    path = tmp_path / "memory-write-queue.jsonl"
    a, b = WriteQueue(path), WriteQueue(path)
    a.push(_write("alice", "m_city", "I live in Berlin"))
    b.push(_write("alice", "m_city", "I live in Berlin!"))  # the same memory id, written again
    a.push(_write("bob", "m_cello", "I play the cello"))

    assert _on_disk(path) == ["I live in Berlin!", "I play the cello"]


def test_dead_letters_of_another_process_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "memory-write-queue.jsonl"
    a, b = WriteQueue(path), WriteQueue(path)
    b.push(_write("bob", "m_x", "poison"))
    b.dead_letter(b.items()[0], "refused")

    assert len(a) == 0 and a.dead_letters == 1 and b.dead_letters == 1


@pytest.mark.slow
async def test_a_memory_the_cli_queued_survives_the_drain_of_a_running_tui(
    data_dir: Path, redis_url: str, resilience: Resilience
) -> None:
    # The memory store is broken for every process; the TUI (this store, on the console script's
    # files) and the real console script each queue a memory; the store comes back, the TUI drains.
    store = VectorMemoryStore(
        MemoryConfig(embedding_provider="lexical"),
        uri=str(data_dir / "memory"),
        resilience=resilience,
        embedder=LexicalEmbedder(),
        queue_path=data_dir / "memory-write-queue.jsonl",
    )
    try:
        await _tui_and_cli_queue_then_the_tui_drains(store, data_dir, redis_url)
    finally:
        await store.aclose()


async def _tui_and_cli_queue_then_the_tui_drains(store: VectorMemoryStore, data_dir: Path, redis_url: str) -> None:
    await store.store_memory("alice", "c1", "Warm-up fact")
    shutil.move(data_dir / "memory", data_dir / "memory.moved")
    (data_dir / "memory").write_text("not a lance dataset")

    assert await store.store_memory("alice", "c1", "I sail boats on the lake")
    run = run_script(
        "--user",
        "alice",
        "memory",
        "add",
        "I like steam trains",
        env={
            "HOLDFAST_DATA_DIR": str(data_dir),
            "HOLDFAST_REDIS__URL": redis_url,
            "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        },
    )
    assert run.code == 0, run.err
    assert _on_disk(data_dir / "memory-write-queue.jsonl") == ["I sail boats on the lake", "I like steam trains"]

    (data_dir / "memory").unlink()
    shutil.move(data_dir / "memory.moved", data_dir / "memory")
    assert await store.drain() == 2

    assert sorted(m.content for m in await store.list("alice")) == [
        "I like steam trains",
        "I sail boats on the lake",
        "Warm-up fact",
    ]
    assert not (data_dir / "memory-write-queue.jsonl").exists()
