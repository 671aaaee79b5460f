"""The documented rule set that decides what is remembered after a turn."""

from __future__ import annotations

from runtime.memory.salience import salient_statements


def _kept(text: str) -> list[tuple[str, str]]:
    return [(s.content, s.type) for s in salient_statements(text)]


def test_explicit_requests_are_kept_without_the_request_words() -> None:
    assert _kept("Please remember that my sister lives in Oslo.") == [("My sister lives in Oslo", "explicit")]
    assert _kept("Don't forget: the standup moved to 10am") == [("The standup moved to 10am", "explicit")]


def test_first_person_facts_and_preferences_are_kept() -> None:
    assert _kept("My dog is called Rex. I love spicy food!") == [
        ("My dog is called Rex", "fact"),
        ("I love spicy food", "preference"),
    ]
    assert _kept("I live in Berlin and work at a bakery.") == [("I live in Berlin and work at a bakery", "fact")]
    assert _kept("My favourite colour is green") == [("My favourite colour is green", "preference")]


def test_questions_requests_hedges_and_chatter_are_not_kept() -> None:
    for text in [
        "What is my dog called?",
        "Can you write me a poem?",
        "I want you to summarise this.",
        "I think it might rain",
        "I'm not sure about that",
        "Hello there",
        "ok",
    ]:
        assert _kept(text) == [], text


def test_secrets_are_never_kept_even_when_asked() -> None:
    assert _kept("Remember my password is hunter2") == []
    assert _kept("Please remember my API key sk-abcdefghijklmnopqrstuv") == []
    assert _kept("My bank PIN is 1234") == []


def test_repeats_in_one_message_are_kept_once() -> None:
    assert len(salient_statements("I am vegetarian. I am vegetarian.")) == 1
