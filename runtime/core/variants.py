"""Earlier variants of a reply: what a ``/retry`` replaced, worked out from the stored history.

History is append-only, so a retry does not edit the reply it replaces. Every message a turn
saves carries that turn's ``turn_id`` in its metadata; a retry is a new turn answering the same
user message. So among the messages that follow one user message (up to the next user message),
only those of the *latest* turn are the answer; those of earlier turns are earlier variants:
kept, shown marked, exported marked, but never sent to the model as context.

The user may pick another variant (``<`` / ``>`` on a reply in the TUI). The pick is a
conversation setting ``variant:<user message id>`` whose value is :func:`choice_value`: the
chosen turn and the latest turn at the time of choosing. The chosen turn's messages are then the
answer, until a newer turn answers the same message (a later ``/retry``): the newest wins again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtime.core.messages import ChatMessage

#: The conversation setting name prefix of a chosen variant (``variant:<user message id>``).
CHOICE_PREFIX = "variant:"


def choice_value(chosen_turn: str, latest_turn: str) -> str:
    """The stored form of a pick: ``"<chosen turn> <latest turn when chosen>"``."""
    return f"{chosen_turn} {latest_turn}"


def choices_from(settings: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Picks found in a conversation's settings: user message id -> (chosen turn, latest turn
    when chosen). Malformed values are ignored."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in settings.items():
        if name.startswith(CHOICE_PREFIX):
            parts = value.split()
            if len(parts) == 2:
                found[name[len(CHOICE_PREFIX) :]] = (parts[0], parts[1])
    return found


@dataclass(frozen=True)
class TurnVariants:
    """The answers to one user message: ``turns`` (oldest first) and the one ``shown`` as the
    answer (what the next prompt sees)."""

    user_message_id: str
    turns: tuple[str, ...]
    shown: str


def _turn(message: ChatMessage) -> str:
    return str(message.metadata.get("turn_id") or "")


def _answer(turns: Sequence[str], owner: str, choices: Mapping[str, tuple[str, str]], latest: str | None) -> str:
    newest = latest or next((t for t in reversed(turns) if t), "")
    picked = choices.get(owner)
    if picked is not None and latest is None and picked[0] in turns and picked[1] == newest:
        return picked[0]
    return newest


def variant_ids(
    messages: Sequence[ChatMessage],
    current_turn: str | None = None,
    choices: Mapping[str, tuple[str, str]] | None = None,
) -> set[str]:
    """Ids of the messages in ``messages`` (oldest first) that are not the answer to their user
    message: replaced by a later turn, or not the variant the user picked.

    ``current_turn`` is the id of a retry turn still running: it owns the last user message's span
    although it has saved nothing yet, so every earlier reply in that span is a variant already.
    ``choices`` (from :func:`choices_from`) are the user's picks: a pick holds while the newest
    turn of its span is still the one that was newest when it was made.
    Messages without a ``turn_id`` (imported or very old ones) are never variants.
    """
    found: set[str] = set()
    span: list[ChatMessage] = []
    owner = ""
    picks = choices or {}

    def close(latest: str | None) -> None:
        turns = [_turn(m) for m in span]
        answer = _answer(turns, owner, picks, latest)
        found.update(m.id for m, t in zip(span, turns, strict=True) if t and t != answer)
        span.clear()

    for message in messages:
        if message.role == "user":
            close(None)
            owner = message.id
        else:
            span.append(message)
    close(current_turn)
    return found


def turn_variants(
    messages: Sequence[ChatMessage], message_id: str, choices: Mapping[str, tuple[str, str]] | None = None
) -> TurnVariants | None:
    """The variants of the turn that saved ``message_id`` (a reply in ``messages``, oldest first,
    which must start at or before its user message); None if it is not there, has no turn id or
    no user message before it."""
    owner: ChatMessage | None = None
    span: list[ChatMessage] = []
    hit = False
    for message in messages:
        if message.role == "user":
            if hit:
                break
            owner, span = message, []
        else:
            span.append(message)
            hit = hit or message.id == message_id
    if not hit or owner is None:
        return None
    turns: list[str] = []
    for message in span:
        turn = _turn(message)
        if turn and turn not in turns:
            turns.append(turn)
    if not turns:
        return None
    return TurnVariants(owner.id, tuple(turns), _answer([_turn(m) for m in span], owner.id, choices or {}, None))
