"""Built-in plugin: ``notes``, a small per-user notepad kept in Redis.

One Redis hash per user (field = note id), so adding a note is one round trip with no
read-modify-write. Deleting writes a null tombstone in the same hash for the same reason;
listing skips tombstones.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal

from runtime.tools import NotFoundError, ServiceUnavailableError, ToolContext, ValidationError, tool

NAMESPACE = "notes"


@tool(ask_if=lambda args: args.get("action") == "delete")
async def notes(action: Literal["add", "list", "delete"], ctx: ToolContext, text: str = "", note_id: str = "") -> str:
    """The user's notepad: add a note, list notes, or delete one by id.

    Args:
        action: add, list or delete.
        text: The note to add.
        note_id: The id of the note to delete (shown by list).
    """
    state = ctx.state
    if state is None:
        raise ServiceUnavailableError("the notes store is not available", retryable=False, service="redis")
    if action == "add":
        body = " ".join(text.split())
        if not body:
            raise ValidationError("add needs the text of the note")
        nid = "n" + secrets.token_hex(3)
        await state.hset(ctx.user_id, nid, {"text": body, "created_at": time.time()}, namespace=NAMESPACE)
        return f"Saved note {nid}: {body}"
    if action == "list":
        rows = await state.hgetall(ctx.user_id, namespace=NAMESPACE)
        live = sorted(((k, v) for k, v in rows.items() if v), key=lambda kv: kv[1].get("created_at", 0))
        if not live:
            return "No notes."
        return "\n".join(f"- {k}: {v['text']}" for k, v in live)
    if not note_id:
        raise ValidationError("delete needs a note_id")
    if not await state.hget(ctx.user_id, note_id, namespace=NAMESPACE):
        raise NotFoundError(f"no note {note_id}")
    await state.hset(ctx.user_id, note_id, None, namespace=NAMESPACE)
    return f"Deleted note {note_id}."
