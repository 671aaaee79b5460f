"""Case 11: text cut to a token budget never carries a broken character.

One emoji or CJK character is often several byte-level BPE tokens; cutting a token list and
decoding the slice put U+FFFD where a character was split. Every cut here (the newest message's
middle, a tool output's preview, a tool result capped by the runner) must give back only whole
characters of the original, in order.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.config import ContextConfig
from runtime.context import TokenCounter, build_prompt
from runtime.context.truncate import omitted_marker, tool_output_preview, truncate_middle
from runtime.core.messages import ChatMessage

COUNTER = TokenCounter("gpt-4")
#: Characters that take several tokens each in cl100k: emoji (with skin tones and ZWJ), CJK, Thai.
WIDE = st.sampled_from([*list("👩\u200d👩\u200d👧\u200d👦🏳️\u200d🌈👍🏽🦀漢字仮名한국어ไทย"), "é", " ", "a", "\n"])
TEXT = st.text(alphabet=WIDE, min_size=40, max_size=400)


def test_a_slice_that_splits_an_emoji_decodes_without_a_replacement_character() -> None:
    tokens = COUNTER.encode("🦀🦀🦀")
    assert len(tokens) > 3  # each crab is more than one token: a slice can end inside one
    for end in range(1, len(tokens)):
        assert "\ufffd" not in COUNTER.decode(tokens[:end])
        assert "\ufffd" not in COUNTER.decode(tokens[end:])
    assert COUNTER.decode(tokens) == "🦀🦀🦀"


@settings(max_examples=150, deadline=None)
@given(text=TEXT, budget=st.integers(min_value=12, max_value=80))
def test_truncate_middle_keeps_whole_characters(text: str, budget: int) -> None:
    cut = truncate_middle(COUNTER, text, budget)
    if cut is None:
        return
    result, omitted = cut
    assert "\ufffd" not in result
    if omitted == 0:
        assert result == text
        return
    head, _, tail = result.partition("\n" + omitted_marker(omitted) + "\n")
    assert text.startswith(head) and text.endswith(tail)
    assert COUNTER.count_text(result) <= budget


@settings(max_examples=100, deadline=None)
@given(text=TEXT.map(lambda t: t * 4), preview=st.integers(min_value=3, max_value=40))
def test_tool_output_previews_keep_whole_characters(text: str, preview: int) -> None:
    shown = tool_output_preview(COUNTER, text, preview)
    if shown is not None:
        kept = shown.split("\n[... ")[0]
        assert "\ufffd" not in shown and text.startswith(kept)


@pytest.mark.parametrize("unit", ["👩‍👩‍👧‍👦 ", "漢字仮名交じり文", "ไทย "])
def test_an_oversized_newest_message_is_cut_on_character_boundaries(unit: str) -> None:
    history = [ChatMessage(role="user", content=unit * 2000)]
    built = build_prompt(COUNTER, ContextConfig(reserved_output_tokens=100), 600, "You are terse.", history)
    sent = built.messages[-1]["content"]
    assert built.report.user_message_truncated
    assert "\ufffd" not in sent


# ---------------------------------------------------------------- what a reader sees as one character

#: Grapheme clusters of several code points: a ZWJ family, a skin tone, a flag (two regional
#: indicators), a rainbow flag (variation selector and ZWJ), a letter with combining accents.
CLUSTERS = ["👨\u200d👩\u200d👧\u200d👦", "👍🏽", "🇯🇵", "🏳️\u200d🌈", "e\u0301\u0323", "한", "\r\n"]


def _cluster_edges(text: str) -> set[int]:
    regex = pytest.importorskip("regex")  # tiktoken's own dependency; \X is UAX #29's grapheme cluster
    return {0, *(m.end() for m in regex.finditer(r"\X", text))}


@settings(max_examples=150, deadline=None)
@given(
    parts=st.lists(st.sampled_from([*CLUSTERS, "a", " ", "漢"]), min_size=30, max_size=300),
    budget=st.integers(min_value=12, max_value=80),
)
def test_a_cut_never_splits_an_emoji_sequence_a_flag_or_an_accented_letter(parts: list[str], budget: int) -> None:
    """A family emoji cut after its first person, or a flag cut between its two letters, shows
    as different characters: every cut falls on a grapheme cluster's edge, and the marker counts
    the tokens the kept parts do not hold."""
    text = "".join(parts)
    edges = _cluster_edges(text)
    cut = truncate_middle(COUNTER, text, budget)
    if cut is not None and cut[1]:
        result, omitted = cut
        head, _, tail = result.partition("\n" + omitted_marker(omitted) + "\n")
        assert text.startswith(head) and text.endswith(tail)
        assert len(head) in edges and len(text) - len(tail) in edges
        assert omitted == len(COUNTER.encode(text)) - COUNTER.count_text(head) - COUNTER.count_text(tail)
    shown = tool_output_preview(COUNTER, text * 3, max(3, budget // 4))
    if shown is not None:
        kept = shown.split("\n[... ")[0]
        assert len(kept) in _cluster_edges(text * 3)


def test_an_oversized_message_of_family_emoji_starts_its_tail_on_a_whole_family() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    history = [ChatMessage(role="user", content="😀" * 3000 + family * 2000)]
    built = build_prompt(COUNTER, ContextConfig(reserved_output_tokens=100), 600, "You are terse.", history)
    sent = built.messages[-1]["content"]
    tail = sent.rsplit(" tokens omitted ...]\n", 1)[1]
    assert built.report.user_message_truncated and tail.startswith(family) and tail.endswith(family)
    assert tail == family * (len(tail) // len(family))
