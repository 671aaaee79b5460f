"""Earlier variants of a reply: what a ``/retry`` replaced, worked out from the stored history.

History is append-only, so a retry does not edit the reply it replaces. Every message a turn
saves carries that turn's ``turn_id`` in its metadata; a retry is a new turn answering the same
user message. So among the messages that follow one user message (up to the next user message),
only those of the *latest* turn are the answer; those of earlier turns are earlier variants:
kept, shown marked, exported marked, but never sent to the model as context.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime.core.messages import ChatMessage


def variant_ids(messages: Sequence[ChatMessage], current_turn: str | None = None) -> set[str]:
    """Ids of the messages in ``messages`` (oldest first) that a later turn answering the same user
    message replaced.

    ``current_turn`` is the id of a retry turn still running: it owns the last user message's span
    although it has saved nothing yet, so every earlier reply in that span is a variant already.
    Messages without a ``turn_id`` (imported or very old ones) are never variants.
    """
    found: set[str] = set()
    span: list[ChatMessage] = []

    def close(latest: str | None) -> None:
        turns = [str(m.metadata.get("turn_id") or "") for m in span]
        newest = latest or next((t for t in reversed(turns) if t), "")
        found.update(m.id for m, t in zip(span, turns, strict=True) if t and t != newest)
        span.clear()

    for message in messages:
        if message.role == "user":
            close(None)
        else:
            span.append(message)
    close(current_turn)
    return found
