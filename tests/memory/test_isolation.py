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


async def test_hostile_ids_are_refused_at_every_memory_api_before_any_filter_sees_them(
    store: VectorMemoryStore,
) -> None:
    # One user-id rule (runtime.core.ids) guards the door; escaping (below) stays the second line.
    await store.store_memory("victim", "c", "My dog is called Rex")
    for uid in HOSTILE:
        calls = {
            "store": lambda uid=uid: store.store_memory(uid, "c", "My dog is called Evil"),
            "search": lambda uid=uid: store.search_memories("what is my dog called?", uid, min_similarity=-1.0),
            "list": lambda uid=uid: store.list(uid),
            "count": lambda uid=uid: store.count(uid),
            "forget": lambda uid=uid: store.forget(uid, "m_0"),
        }
        for call in calls.values():
            with pytest.raises(ValidationError, match="user_id"):
                await call()
    assert await store.count() == 1
    assert [m.content for m in await store.list("victim")] == ["My dog is called Rex"]


async def test_a_user_cannot_forget_another_users_memory(store: VectorMemoryStore) -> None:
    victim_id = await store.store_memory("victim", "c", "I live in Berlin")
    with pytest.raises(ValidationError):
        await store.forget("x' OR '1'='1", victim_id)
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
