"""Shortening text on token boundaries, with a visible marker of what was left out.

Both functions work on tokens (not characters) so the result's size is known, then re-count
the composed text: decoding a token slice and re-encoding it next to a marker can merge or
split tokens at the seams, so the loop shrinks until the real count fits.

A cut never splits what a reader sees as one character: a token slice may end inside a UTF-8
sequence (the decoder drops the partial bytes) or inside a grapheme cluster (an emoji with a
skin tone or joined by ZWJ, a flag, a letter with combining accents), so each cut is moved
back to the cluster's edge (:func:`grapheme_floor`, :func:`grapheme_ceil`).
"""

from __future__ import annotations

import unicodedata

from runtime.context.tokens import TokenCounter

_ZWJ = "\u200d"


def _extends(ch: str) -> bool:
    """Whether ``ch`` continues the grapheme cluster before it (Unicode UAX #29's Extend and
    SpacingMark, ZWJ, variation selectors, emoji skin-tone modifiers, emoji tag characters)."""
    code = ord(ch)
    return (
        ch == _ZWJ
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or 0xE0100 <= code <= 0xE01EF
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _inside_cluster(text: str, i: int) -> bool:
    """Whether a cut before ``text[i]`` would split a grapheme cluster (0 < i < len(text))."""
    ch, before = text[i], text[i - 1]
    if _extends(ch) or before == _ZWJ:
        return True
    if ch == "\n" and before == "\r":
        return True
    if _regional(ch) and _regional(before):
        run = 0  # flags pair regional indicators from the start of their run
        j = i - 1
        while j >= 0 and _regional(text[j]):
            run += 1
            j -= 1
        return run % 2 == 1
    return False


def grapheme_floor(text: str, i: int) -> int:
    """The largest cut position ``<= i`` that does not split a grapheme cluster of ``text``."""
    while 0 < i < len(text) and _inside_cluster(text, i):
        i -= 1
    return i


def grapheme_ceil(text: str, i: int) -> int:
    """The smallest cut position ``>= i`` that does not split a grapheme cluster of ``text``."""
    while 0 < i < len(text) and _inside_cluster(text, i):
        i += 1
    return i


#: A preview is only worth making when it saves at least this many tokens.
PREVIEW_MIN_SAVING = 32


def omitted_marker(count: int) -> str:
    """The visible marker put where ``count`` tokens were cut out: ``[... N tokens omitted ...]``."""
    return f"[... {count} tokens omitted ...]"


def truncate_middle(counter: TokenCounter, text: str, max_tokens: int) -> tuple[str, int] | None:
    """``text`` cut in the middle to at most ``max_tokens`` tokens, keeping its start and end,
    with a marker naming how many tokens were omitted. Returns (text, omitted) or None when
    not even the marker fits. Text that already fits is returned unchanged with 0 omitted."""
    tokens = counter.encode(text)
    if len(tokens) <= max_tokens:
        return text, 0
    keep = max_tokens - counter.count_text("\n" + omitted_marker(len(tokens)) + "\n")
    while keep >= 0:
        head = (keep + 1) // 2
        tail = keep - head
        # Decoded slices are a prefix and a suffix of ``text``; their cuts move to cluster edges,
        # and the marker counts what the kept parts do not hold.
        start = grapheme_floor(text, len(counter.decode(tokens[:head])))
        end = grapheme_ceil(text, len(text) - len(counter.decode(tokens[len(tokens) - tail :]))) if tail else len(text)
        omitted = len(tokens) - counter.count_text(text[:start]) - (counter.count_text(text[end:]) if tail else 0)
        candidate = text[:start] + "\n" + omitted_marker(omitted) + "\n" + text[end:]
        size = counter.count_text(candidate)
        if size <= max_tokens:
            return candidate, omitted
        keep -= max(1, size - max_tokens)
    return None


def tool_output_preview(counter: TokenCounter, text: str, preview_tokens: int) -> str | None:
    """The first ``preview_tokens`` tokens of a long tool output and a marker, or None when
    the output is short enough that a preview would not save anything worth having."""
    tokens = counter.encode(text)
    if len(tokens) <= preview_tokens + PREVIEW_MIN_SAVING:
        return None
    omitted = len(tokens) - preview_tokens
    kept = text[: grapheme_floor(text, len(counter.decode(tokens[:preview_tokens])))]
    return kept + f"\n[... {omitted} more tokens of tool output omitted; the full output is stored ...]"
