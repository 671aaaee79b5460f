"""VectorMemoryStore writes: dedup, concurrency, forget, summaries, listing, upkeep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from runtime.memory import indexing
from runtime.memory.embeddings import LexicalEmbedder
from runtime.memory.records import CONVERSATION_SUMMARY
from runtime.memory.remember import remember_turn
from runtime.memory.store import VectorMemoryStore


async def test_same_fact_twice_is_one_memory(store: VectorMemoryStore) -> None:
    first = await store.store_memory("alice", "c1", "My dog is called Rex")
    again = await store.store_memory("alice", "c2", "my dog is  called rex")
    assert first == again
    assert await store.count("alice") == 1
    other = await store.store_memory("bob", "c1", "My dog is called Rex")
    assert other != first and await store.count() == 2


async def test_concurrent_adds_of_the_same_fact_do_not_duplicate(store: VectorMemoryStore) -> None:
    ids = await asyncio.gather(
        *[store.store_memory("alice", f"c{i}", "I live in Berlin") for i in range(20)],
        *[
            store.store_memory("alice", "c", fact)
            for fact in (
                "I drive a red Volvo",
                "My sister Anna lives in Oslo",
                "I am vegetarian",
                "My favourite book is Dune",
                "I support Liverpool football club",
            )
        ],
    )
    assert len(set(ids[:20])) == 1
    assert await store.count("alice") == 6


async def test_near_duplicates_are_merged_into_the_existing_memory(
    make_store: Callable[..., VectorMemoryStore],
) -> None:
    store = make_store(dedup_similarity=0.9)
    first = await store.store_memory("alice", "c1", "My dog is called Rex.")
    second = await store.store_memory("alice", "c1", "My dog is called Rex!!")
    assert second == first
    assert [m.content for m in await store.list("alice")] == ["My dog is called Rex!!"]
    await store.store_memory("alice", "c1", "My cat is called Tom")
    assert await store.count("alice") == 2


async def test_a_batch_of_near_duplicates_each_merges_into_its_own_memory(
    make_store: Callable[..., VectorMemoryStore],
) -> None:
    store = make_store(dedup_similarity=0.9)
    rex = await store.store_memory("alice", "c1", "My dog is called Rex.")
    tom = await store.store_memory("alice", "c1", "My cat is called Tom.")
    bobs_rex = await store.store_memory("bob", "c1", "My dog is called Rex.")
    # Concurrent writers are coalesced into one batch: one nearest-neighbour query per user.
    ids = await asyncio.gather(
        store.store_memory("alice", "c2", "I live in Berlin"),
        store.store_memory("alice", "c2", "My cat is called Tom!!"),
        store.store_memory("bob", "c2", "My dog is called Rex!!"),
        store.store_memory("alice", "c2", "My dog is called Rex!!"),
        store.store_memory("alice", "c2", "I support Liverpool football club"),
    )
    assert ids[1] == tom and ids[2] == bobs_rex and ids[3] == rex
    assert len({rex, tom, bobs_rex, ids[0], ids[4]}) == 5
    assert sorted(m.content for m in await store.list("alice")) == [
        "I live in Berlin",
        "I support Liverpool football club",
        "My cat is called Tom!!",
        "My dog is called Rex!!",
    ]
    assert [m.content for m in await store.list("bob")] == ["My dog is called Rex!!"]


async def test_forget_removes_only_that_memory(store: VectorMemoryStore) -> None:
    rex = await store.store_memory("alice", "c1", "My dog is called Rex")
    await store.store_memory("alice", "c1", "I live in Berlin")
    assert await store.forget("alice", rex) is True
    assert await store.forget("alice", rex) is False
    assert [m.content for m in await store.list("alice")] == ["I live in Berlin"]
    assert (await store.search_memories("what's my pet's name?", "alice")).memories == ()


async def test_summaries_are_typed_and_replace_the_previous_one(store: VectorMemoryStore) -> None:
    await store.summarize_conversation("conv-1", "We planned a trip to Oslo in June.", user_id="alice")
    await store.summarize_conversation(
        "conv-1", "We planned a trip to Oslo in June and booked a hotel.", user_id="alice"
    )
    await store.summarize_conversation("conv-2", "We debugged a Rust borrow checker error.", user_id="alice")
    summaries = await store.list("alice", types=[CONVERSATION_SUMMARY])
    assert sorted(m.content for m in summaries) == [
        "We debugged a Rust borrow checker error.",
        "We planned a trip to Oslo in June and booked a hotel.",
    ]
    assert {m.type for m in summaries} == {CONVERSATION_SUMMARY}
    recall = await store.search_memories("when is the Oslo trip?", "alice")
    assert recall.memories[0].conversation_id == "conv-1"


async def test_list_is_newest_first_with_metadata(store: VectorMemoryStore, clock: object) -> None:
    ticks = iter(range(100))
    store._now = lambda: 1_700_000_000.0 + next(ticks)
    await store.store_memory("alice", "c1", "I live in Berlin", {"source": "test"})
    await store.store_memory("alice", "c1", "I prefer tea over coffee")
    listed = await store.list("alice")
    assert [m.content for m in listed] == ["I prefer tea over coffee", "I live in Berlin"]
    assert listed[1].metadata == {"source": "test"}


async def test_remember_turn_stores_salient_statements_only(
    store: VectorMemoryStore, make_store: Callable[..., VectorMemoryStore]
) -> None:
    ids = await remember_turn(
        store,
        "alice",
        "c1",
        "Hi! My dog is called Rex. Can you suggest a name for my cat? Remember that I hate onions.",
    )
    assert len(ids) == 2
    assert sorted(m.content for m in await store.list("alice")) == ["I hate onions", "My dog is called Rex"]
    off = make_store(auto_remember=False)
    assert await remember_turn(off, "bob", "c1", "My dog is called Rex.") == []


@pytest.mark.slow
async def test_indexes_are_built_past_the_threshold_and_optimize_compacts(
    make_store: Callable[..., VectorMemoryStore],
) -> None:
    store = make_store(index_threshold=300, optimize_every=4)
    texts = [f"Note {i}: I like {w} number {i}" for i, w in enumerate(["tea", "trains", "rust", "oslo"] * 80)]
    for start in range(0, len(texts), 40):
        await asyncio.gather(
            *[store.store_memory(f"u{i % 3}", "c", t) for i, t in enumerate(texts[start : start + 40])]
        )
    await store.wait_idle()
    table = await store._open(create=False)
    indexed = {tuple(i.columns) for i in await table.list_indices()}
    assert ("vector",) in indexed and ("user_id",) in indexed
    assert await store.fragment_count() <= 4
    recall = await store.search_memories("Note 17: I like trains number 17", "u2")
    assert recall.memories and recall.memories[0].content == "Note 17: I like trains number 17"


@pytest.mark.slow
@pytest.mark.parametrize("min_probes", [1, 30])
async def test_a_user_with_few_memories_in_a_large_indexed_table_gets_all_of_them(
    make_store: Callable[..., VectorMemoryStore], monkeypatch: pytest.MonkeyPatch, min_probes: int
) -> None:
    # Many small partitions and few probes, so bob's rows mostly sit in partitions a
    # query does not probe first (as in a big table where each user owns ~1% of rows);
    # and more probes than LanceDB's default of 20, as a 100k table gets.
    monkeypatch.setattr(indexing, "ROWS_PER_PARTITION", 10)
    monkeypatch.setattr(indexing, "MIN_PROBES", min_probes)
    monkeypatch.setattr(indexing, "PROBE_SHARE", 0.05)
    store = make_store(embedder=LexicalEmbedder(), index_threshold=10**9, optimize_every=10**9)
    topics = ["tea", "trains", "rust", "oslo", "cello", "chess", "bread", "birds"]
    await asyncio.gather(
        *[
            store.store_memory("alice", "c", f"Note {i} about {topics[i % 8]} and {topics[i * 3 % 8]}")
            for i in range(400)
        ]
    )
    bob = ["Bob keeps bees in the garden", "Bob fixes old radios", "Bob's train leaves at nine"]
    for fact in bob:
        await store.store_memory("bob", "c", fact)
    assert await store.ensure_indexes(force=True)

    for reader in (store, make_store(embedder=LexicalEmbedder())):  # a fresh store finds the index too
        recall = await reader.search_memories("what does bob do?", "bob", limit=5, min_similarity=-1.0)
        assert sorted(m.content for m in recall.memories) == sorted(bob)
