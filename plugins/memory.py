"""Built-in plugin: ``memory``, so the model can remember, recall and forget things for the user.

Works through the long-term memory store the runtime injects (user-scoped): a user can only
ever reach their own memories.
"""

from __future__ import annotations

from typing import Literal

from runtime.tools import ServiceUnavailableError, ToolContext, ValidationError, tool


@tool(timeout=15.0, ask_if=lambda args: args.get("action") == "forget")
async def memory(
    action: Literal["remember", "recall", "forget"], ctx: ToolContext, text: str = "", memory_id: str = ""
) -> str:
    """Long-term memory of the user across conversations.

    Args:
        action: remember (store text), recall (search memories like text) or forget (delete
            memory_id, or the memory most like text).
        text: What to remember, or what to look for.
        memory_id: The id of the memory to forget (from a recall).
    """
    store = ctx.memory
    if store is None:
        raise ServiceUnavailableError("long-term memory is turned off", retryable=False, service="memory")
    if action == "remember":
        if not text.strip():
            raise ValidationError("remember needs the text to remember")
        mid = await store.store_memory(ctx.user_id, ctx.conversation_id, text, {"source": "tool"})
        return f"Remembered ({mid}): {' '.join(text.split())}"
    if action == "recall":
        recall = await store.search_memories(text, ctx.user_id)
        if not recall.memories:
            note = f" (memory is degraded: {recall.reason})" if recall.degraded and recall.reason else ""
            return f"No memories match {text!r}{note}."
        return "\n".join(f"- ({m.id}) {m.content}" for m in recall.memories)
    target = memory_id.strip()
    if not target:
        if not text.strip():
            raise ValidationError("forget needs a memory_id or the text of the memory")
        found = await store.search_memories(text, ctx.user_id, limit=1)
        if not found.memories:
            return f"No memory matches {text!r}; nothing forgotten."
        target = found.memories[0].id
    forgotten = await store.forget(ctx.user_id, target)
    return f"Forgot {target}." if forgotten else f"No memory {target}; nothing forgotten."
