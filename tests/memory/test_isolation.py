"""Users never see each other's memories, whatever their ids contain."""

from __future__ import annotations

import pytest

from runtime.core.errors import ValidationError
from runtime.memory import escaping
from runtime.memory.store import VectorMemoryStore

HOSTILE = [
    "x' OR '1'='1",
    "x' OR user_id != '",
    "o'brien",
    "back\\slash\\",
    "line\nbreak",
    'quote"double',
    "'; DROP TABLE memories; --",
    "ünïcødé 用户",
]


async def test_hostile_ids_only_see_their_own_memories(store: VectorMemoryStore) -> None:
    await store.store_memory("victim", "c", "My dog is called Rex")
    for i, uid in enumerate(HOSTILE):
        await store.store_memory(uid, "c", f"My dog is called Dog{i}")
    for i, uid in enumerate(HOSTILE):
        recall = await store.search_memories("what is my dog called?", uid, limit=50, min_similarity=-1.0)
        assert {m.user_id for m in recall.memories} == {uid}, uid
        assert [m.content for m in recall.memories] == [f"My dog is called Dog{i}"]
        assert [m.content for m in await store.list(uid)] == [f"My dog is called Dog{i}"]
        assert await store.count(uid) == 1
    assert await store.count() == len(HOSTILE) + 1


async def test_a_user_cannot_forget_another_users_memory(store: VectorMemoryStore) -> None:
    victim_id = await store.store_memory("victim", "c", "I live in Berlin")
    assert await store.forget("x' OR '1'='1", victim_id) is False
    assert await store.forget("attacker", victim_id) is False
    assert await store.count("victim") == 1
    assert await store.forget("victim", victim_id) is True
    assert await store.count("victim") == 0


async def test_conversation_filter_is_escaped_too(store: VectorMemoryStore) -> None:
    await store.store_memory("alice", "conv-1", "My dog is called Rex")
    await store.store_memory("alice", "conv-2", "My cat is called Tom")
    recall = await store.search_memories("pet name", "alice", conversation_id="x' OR '1'='1", min_similarity=-1.0)
    assert recall.memories == ()
    recall = await store.search_memories("pet name", "alice", conversation_id="conv-2", min_similarity=-1.0)
    assert [m.content for m in recall.memories] == ["My cat is called Tom"]


def test_escaping_doubles_quotes_and_refuses_nul_and_unknown_columns() -> None:
    assert escaping.sql_string("o'brien") == "'o''brien'"
    assert escaping.eq("user_id", "x' OR '1'='1") == "user_id = 'x'' OR ''1''=''1'"
    with pytest.raises(ValidationError):
        escaping.sql_string("a\x00b")
    with pytest.raises(ValidationError):
        escaping.eq("user_id OR 1=1 --", "x")
    assert escaping.one_of("type", []) == "FALSE"
