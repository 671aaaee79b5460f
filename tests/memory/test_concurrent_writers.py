"""Two writers adding the same fact to one memory directory keep one row.

Each store keeps its own LanceDB handle, and a handle does not see another's commits until
it writes: without the table's primary-key marker both ``merge_insert`` calls would decide
the id is new and commit a duplicate. These tests use real stores on one directory, and
two real processes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from runtime.config import MemoryConfig
from runtime.memory.embeddings import LocalEmbedder
from runtime.memory.records import has_primary_key, schema
from runtime.memory.store import VectorMemoryStore
from runtime.resilience import Resilience

REPO = Path(__file__).resolve().parents[2]
FACTS = [
    "My dog is called Rex",
    "I live in Berlin",
    "I am vegetarian",
    "My sister Anna lives in Oslo",
    "I drive a red Volvo",
    "My favourite book is Dune",
    "I work as a nurse at night",
    "I support Liverpool football club",
    "I am learning to play the cello",
    "My birthday is on 3 March",
    "I hate onions",
    "I prefer tea over coffee",
]


async def _ids(store: VectorMemoryStore, user: str) -> list[str]:
    return sorted(m.id for m in await store.list(user))


async def test_two_stores_on_one_directory_keep_one_row_per_fact(make_store: Callable[..., VectorMemoryStore]) -> None:
    a, b = make_store(), make_store()
    await a.store_memory("alice", "c0", "I moved to Lisbon last year")
    # b opens the table now and keeps that version: the next fact is new to both handles.
    assert await b.count("alice") == 1

    first = await a.store_memory("alice", "c1", "My cat is called Tom")
    second = await b.store_memory("alice", "c2", "My cat is called Tom")
    assert first == second
    fresh = make_store()
    assert [m.content for m in await fresh.list("alice")].count("My cat is called Tom") == 1
    assert await fresh.count("alice") == 2


async def test_two_stores_writing_the_same_facts_at_once(make_store: Callable[..., VectorMemoryStore]) -> None:
    a, b = make_store(), make_store()
    await a.store_memory("alice", "c0", "I moved to Lisbon last year")
    assert await b.count() == 1
    await asyncio.gather(*[s.store_memory("alice", "c", fact) for fact in FACTS[:6] for s in (a, b)])
    fresh = make_store()
    contents = [m.content for m in await fresh.list("alice")]
    assert sorted(contents) == sorted(["I moved to Lisbon last year", *FACTS[:6]])


async def test_a_table_made_before_the_primary_key_marker_is_upgraded(
    data_dir: Path, make_store: Callable[..., VectorMemoryStore], local_embedder: LocalEmbedder
) -> None:
    # Write a table the way the store did before the marker existed.
    unmarked = pa.schema([f.remove_metadata() for f in schema(local_embedder.ndims)])
    db = await lancedb.connect_async(str(data_dir / "memory"))
    name = make_store().table_name
    await db.create_table(name, schema=unmarked)
    assert not has_primary_key(await (await db.open_table(name)).schema())

    a, b = make_store(), make_store()
    assert await a.count() == 0 and await b.count() == 0
    assert has_primary_key(await (await db.open_table(name)).schema())
    await a.store_memory("alice", "c1", "I am allergic to peanuts")
    await b.store_memory("alice", "c2", "I am allergic to peanuts")
    assert await make_store().count("alice") == 1


_WRITER = """
import asyncio, sys
from pathlib import Path
from runtime.config import MemoryConfig
from runtime.memory.embeddings import LocalEmbedder
from runtime.memory.store import VectorMemoryStore
from runtime.resilience import Resilience

async def main(uri, queue, facts):
    store = VectorMemoryStore(MemoryConfig(), uri=uri, resilience=Resilience(),
                              embedder=LocalEmbedder(), queue_path=Path(queue))
    await store.embedder.embed(["warm up"])
    await store.count()
    print("ready", flush=True)
    sys.stdin.readline()
    for fact in facts:
        await store.store_memory("alice", "c", fact)
    print("queued", len(store.queue), flush=True)
    await store.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
"""


@pytest.mark.slow
async def test_two_processes_adding_the_same_facts_keep_one_row_each(
    data_dir: Path, make_store: Callable[..., VectorMemoryStore]
) -> None:
    uri = str(data_dir / "memory")
    # The table exists before both start, so each process holds a handle on the same version.
    seed = make_store()
    await seed.store_memory("alice", "c0", "I moved to Lisbon last year")

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, uri, str(data_dir / f"queue-{i}.jsonl"), *FACTS],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for proc in procs:  # both have loaded the model and opened the table
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # then both write at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=False):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "queued 0", err[-2000:]  # every write was applied, none queued

    fresh = VectorMemoryStore(
        MemoryConfig(),
        uri=uri,
        resilience=Resilience(),
        embedder=seed.embedder,
        queue_path=data_dir / "fresh-queue.jsonl",
    )
    contents = [m.content for m in await fresh.list("alice")]
    await fresh.aclose()
    assert sorted(contents) == sorted(["I moved to Lisbon last year", *FACTS])
