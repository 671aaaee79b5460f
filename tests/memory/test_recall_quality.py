"""Semantic recall with the default model and the default threshold, on a labelled set."""

from __future__ import annotations

from runtime.config import MemoryConfig
from runtime.memory.store import VectorMemoryStore
from tests.memory.labelled import MEMORIES, QUERIES


async def test_pet_name_is_recalled_and_unrelated_memory_is_not(store: VectorMemoryStore) -> None:
    await store.store_memory("alice", "c1", "My dog is called Rex")
    await store.store_memory("alice", "c1", "I am allergic to peanuts")
    recall = await store.search_memories("what's my pet's name?", "alice")
    assert [m.content for m in recall.memories] == ["My dog is called Rex"]
    assert not recall.degraded
    lines = await store.get_context_memories("alice", "what's my pet's name?", limit=5)
    assert len(lines) == 1 and lines[0].startswith("[Memory from ") and lines[0].endswith("]: My dog is called Rex")


async def test_labelled_set_precision_and_recall_at_default_threshold(store: VectorMemoryStore) -> None:
    assert store.config.min_similarity == MemoryConfig().min_similarity
    for text in MEMORIES:
        await store.store_memory("bob", "c1", text)
    assert await store.count("bob") == len(MEMORIES)
    hits = misses = wrong = unrelated_hits = top1 = 0
    for query, label in QUERIES:
        found = [m.content for m in (await store.search_memories(query, "bob")).memories]
        if label is None:
            unrelated_hits += len(found)
            continue
        if MEMORIES[label] in found:
            hits += 1
            top1 += found[0] == MEMORIES[label]
        else:
            misses += 1
        wrong += sum(1 for f in found if f != MEMORIES[label])
    precision = hits / max(hits + wrong + unrelated_hits, 1)
    recall = hits / (hits + misses)
    print(
        f"\nlabelled set ({len(QUERIES)} queries, {len(MEMORIES)} memories, threshold "
        f"{store.config.min_similarity}): recall {recall:.2f}, precision {precision:.2f} "
        f"(top-5, neighbours count as wrong), top-1 accuracy {top1 / (hits + misses):.2f}, "
        f"results for unrelated queries {unrelated_hits}"
    )
    assert recall >= 0.9
    assert top1 >= hits - 1
    assert unrelated_hits == 0


async def test_spec_threshold_of_0_7_recalls_almost_nothing(store: VectorMemoryStore) -> None:
    """Why the default is not the spec's 0.7: with MiniLM relevant pairs score ~0.3-0.6."""
    for text in MEMORIES:
        await store.store_memory("carol", "c1", text)
    found = 0
    for query, label in QUERIES:
        if label is not None:
            found += len((await store.search_memories(query, "carol", min_similarity=0.7)).memories)
    assert found <= 3
