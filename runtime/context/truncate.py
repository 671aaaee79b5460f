"""Shortening text on token boundaries, with a visible marker of what was left out.

Both functions work on tokens (not characters) so the result's size is known, then re-count
the composed text: decoding a token slice and re-encoding it next to a marker can merge or
split tokens at the seams, so the loop shrinks until the real count fits.
"""

from __future__ import annotations

from runtime.context.tokens import TokenCounter

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
        omitted = len(tokens) - head - tail
        candidate = (
            counter.decode(tokens[:head])
            + "\n"
            + omitted_marker(omitted)
            + "\n"
            + (counter.decode(tokens[len(tokens) - tail :]) if tail else "")
        )
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
    return (
        counter.decode(tokens[:preview_tokens])
        + f"\n[... {omitted} more tokens of tool output omitted; the full output is stored ...]"
    )
