"""After a turn: store what the salience rules pick from the user's message.

Kept apart from the rules (pure functions in :mod:`salience`) and the store, so the agent
calls one function and the configuration switch (``[memory].auto_remember``) lives here.
"""

from __future__ import annotations

from runtime.memory.salience import salient_statements
from runtime.memory.store import VectorMemoryStore


async def remember_turn(
    store: VectorMemoryStore, user_id: str, conversation_id: str, user_text: str, *, message_id: str | None = None
) -> list[str]:
    """Store the salient statements of ``user_text`` (see :mod:`runtime.memory.salience`).

    Args:
        message_id: the chat message they came from, recorded in each memory's metadata.

    Returns:
        Their memory ids; none when ``auto_remember`` is off or memory is disabled.

    Raises:
        ValidationError: an id or text :meth:`VectorMemoryStore.store_memory` refuses. Outages
            do not raise: the writes are queued.
    """
    if not (store.config.enabled and store.config.auto_remember):
        return []
    ids = []
    for item in salient_statements(user_text):
        meta = {"rule": item.rule, "source": "auto"}
        if message_id:
            meta["message_id"] = message_id
        ids.append(await store.store_memory(user_id, conversation_id, item.content, meta, type=item.type))
    return ids
