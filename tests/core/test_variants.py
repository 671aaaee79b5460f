"""Which replies are the answer to their user message (runtime.core.variants): the newest turn's,
unless the user picked another variant, until a newer turn answers the same message."""

from __future__ import annotations

from runtime.core.messages import ChatMessage
from runtime.core.variants import choice_value, choices_from, turn_variants, variant_ids


def _msg(mid: str, role: str, turn: str = "") -> ChatMessage:
    return ChatMessage(role=role, content=mid, id=mid, metadata={"turn_id": turn} if turn else {})  # type: ignore[arg-type]


HISTORY = [
    _msg("u1", "user", "t1"),
    _msg("a1", "assistant", "t1"),  # answer of turn 1 (a tool call)
    _msg("x1", "tool", "t1"),
    _msg("a1b", "assistant", "t1"),
    _msg("a2", "assistant", "t2"),  # /retry: turn 2 answers u1 again
    _msg("u2", "user", "t3"),
    _msg("a3", "assistant", "t3"),
]


def test_the_newest_turn_answers_without_a_pick() -> None:
    assert variant_ids(HISTORY) == {"a1", "x1", "a1b"}


def test_a_pick_makes_its_turn_the_answer_while_the_newest_turn_is_unchanged() -> None:
    picks = choices_from({"variant:u1": choice_value("t1", "t2"), "model": "m"})
    assert picks == {"u1": ("t1", "t2")}
    assert variant_ids(HISTORY, choices=picks) == {"a2"}
    # A later retry (turn 4) answers u1 after the pick: the newest wins again.
    retried = [*HISTORY[:5], _msg("a4", "assistant", "t4"), *HISTORY[5:]]
    assert variant_ids(retried, choices=picks) == {"a1", "x1", "a1b", "a2"}
    # A retry still running owns its span: no pick holds there.
    assert variant_ids(HISTORY[:5], current_turn="t9", choices=picks) == {"a1", "x1", "a1b", "a2"}


def test_turn_variants_lists_the_turns_of_a_reply_and_the_one_shown() -> None:
    found = turn_variants(HISTORY, "a1b")
    assert found is not None and (found.user_message_id, found.turns, found.shown) == ("u1", ("t1", "t2"), "t2")
    picked = turn_variants(HISTORY, "a2", {"u1": ("t1", "t2")})
    assert picked is not None and picked.shown == "t1"
    assert turn_variants(HISTORY, "nope") is None
    assert turn_variants(HISTORY, "a3") is not None and turn_variants(HISTORY, "a3").turns == ("t3",)  # type: ignore[union-attr]
    assert choices_from({"variant:u1": "malformed"}) == {}
