"""Literal rendering of untrusted text (model, tool and memory output).

Text from the model, tools or memories must reach the screen exactly as typed: never parsed
as Rich/Textual markup and never able to drive the terminal. ``clean`` (from
:mod:`runtime.core.safe_text`) removes terminal escapes; ``literal`` wraps the result in a
``rich.text.Text`` so no markup is interpreted.
"""

from __future__ import annotations

from rich.text import Text

from runtime.core.safe_text import clean

__all__ = ["clean", "literal", "one_line"]


def literal(text: str, style: str = "") -> Text:
    """A ``Text`` showing ``text`` verbatim (markup characters included), escapes removed."""
    return Text(clean(text), style=style)


def plural(count: int, noun: str, many: str = "") -> str:
    """``1 write``, ``2 writes``, ``0 writes``; ``many`` for a noun whose plural is not noun + s
    (``plural(n, "memory", "memories")``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {many or noun + 's'}"


def one_line(text: str, limit: int = 120) -> str:
    """First line of ``clean(text)``, shortened to ``limit`` characters with an ellipsis."""
    line = clean(text).strip().splitlines()[0] if text and text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
