"""Switching provider: a new table per model, and ``reembed`` carries memories across."""

from __future__ import annotations

from collections.abc import Callable

from runtime.memory.embeddings import LexicalEmbedder
from runtime.memory.reembed import other_tables, reembed
from runtime.memory.store import VectorMemoryStore


async def test_reembed_copies_memories_into_the_new_models_table(make_store: Callable[..., VectorMemoryStore]) -> None:
    old = make_store(embedder=LexicalEmbedder())
    await old.store_memory("alice", "c1", "My dog is called Rex")
    await old.store_memory("bob", "c1", "I live in Berlin")

    new = make_store()
    assert new.table_name != old.table_name
    assert await new.count() == 0  # vectors of different models never share a table
    assert await other_tables(new) == [old.table_name]

    report = await reembed(new)
    assert report.total == 2 and report.copied == {old.table_name: 2}
    recall = await new.search_memories("what's my pet's name?", "alice")
    assert [m.content for m in recall.memories] == ["My dog is called Rex"] and not recall.degraded
    assert (await new.search_memories("what's my pet's name?", "bob")).memories == ()
    assert (await reembed(new)).total == 2 and await new.count() == 2  # idempotent
