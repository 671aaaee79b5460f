"""Known context windows of chat models, and how a configured window overrides them.

Names are matched by longest prefix so dated snapshots (``gpt-4o-mini-2024-07-18``) and
tagged local models (``llama3:8b``) find their family. Anything unknown gets
:data:`DEFAULT_CONTEXT_WINDOW`, the smallest window in common use, so a guess never
overflows a real model.
"""

from __future__ import annotations

DEFAULT_CONTEXT_WINDOW = 8192

#: Context window in tokens per model family (prefix of the model name, lower case).
KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8192,
    "gpt-3.5-turbo": 16_385,
    "llama3.1": 131_072,
    "llama3.2": 131_072,
    "llama3": 8192,
    "holdfast-demo": 8192,
}

# Longest prefix first, so "gpt-4o-mini" wins over "gpt-4o" and "gpt-4".
_BY_LENGTH = sorted(KNOWN_CONTEXT_WINDOWS.items(), key=lambda item: len(item[0]), reverse=True)


def known_context_window(model: str) -> int | None:
    """The table's window for ``model``, or None when no family matches."""
    name = model.strip().lower()
    # Provider-qualified names ("openai/gpt-4o") are looked up by their last part.
    name = name.rsplit("/", 1)[-1]
    for prefix, window in _BY_LENGTH:
        if name.startswith(prefix):
            return window
    return None


def context_window_for(model: str, configured: int = 0) -> int:
    """The window to budget against: ``configured`` (``[llm].context_window``) when > 0,
    else the known-models table, else :data:`DEFAULT_CONTEXT_WINDOW`."""
    if configured > 0:
        return configured
    return known_context_window(model) or DEFAULT_CONTEXT_WINDOW
