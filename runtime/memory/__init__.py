"""Long-term memory: LanceDB vector store, embedding providers, salience rules, health.

Public API::

    from runtime.memory import VectorMemoryStore, MemoryRecall, Memory, make_embedder
    store = VectorMemoryStore.from_config(config, resilience, bus=bus)
    await store.store_memory(user_id, conversation_id, content, metadata) -> id
    await store.search_memories(query, user_id, conversation_id, limit, min_similarity) -> MemoryRecall
    await store.recall(user_id, message) -> MemoryRecall      # degraded flag + memories
    await store.get_context_memories(user_id, message, limit) -> ["[Memory from …]: …"]
    await store.summarize_conversation(conversation_id, summary, user_id=...) -> id
    await store.forget(user_id, id); await store.list(user_id); await store.count()
    await remember_turn(store, user_id, conversation_id, user_text)   # salience rules
    check_memory(store), check_embeddings(store)                      # -> CheckResult
    await reembed(store)                                              # holdfast memory reembed
"""

from __future__ import annotations

from runtime.memory.embeddings import (
    Embedder,
    LexicalEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
    make_embedder,
)
from runtime.memory.health import check_embeddings, check_memory
from runtime.memory.records import CONVERSATION_SUMMARY, Memory, MemoryRecall
from runtime.memory.reembed import ReembedReport, other_tables, reembed
from runtime.memory.remember import remember_turn
from runtime.memory.salience import Salient, salient_statements
from runtime.memory.store import VectorMemoryStore

__all__ = [
    "CONVERSATION_SUMMARY",
    "Embedder",
    "LexicalEmbedder",
    "LocalEmbedder",
    "Memory",
    "MemoryRecall",
    "OpenAIEmbedder",
    "ReembedReport",
    "Salient",
    "VectorMemoryStore",
    "check_embeddings",
    "check_memory",
    "make_embedder",
    "other_tables",
    "reembed",
    "remember_turn",
    "salient_statements",
]
