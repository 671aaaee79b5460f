"""Literal rendering of untrusted text (model, tool and memory output).

Text from the model, tools or memories must reach the screen exactly as typed: never parsed
as Rich/Textual markup and never able to drive the terminal. ``clean`` (from
:mod:`runtime.core.safe_text`) removes terminal escapes; ``literal`` wraps the result in a
``rich.text.Text`` so no markup is interpreted.
"""

from __future__ import annotations

import re

from rich.text import Text

from runtime.core.safe_text import clean

__all__ = ["StreamCleaner", "clean", "literal", "one_line"]

#: After an ESC at the end of a piece: the start of a CSI sequence still missing its final byte.
_CSI_PREFIX = re.compile(r"\[[0-?]*[ -/]*")
#: An OSC/DCS/PM/APC/SOS string still open (no BEL or ESC after its introducer yet).
_OPEN_STRING = re.compile(r"[\]PX^_][^\x07\x1b]*")
#: Characters an unfinished escape may hold back before it is given up on (and cleaned away).
HOLD_LIMIT = 4096


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


class StreamCleaner:
    """:func:`clean` for text that arrives in pieces (a streamed reply), one piece at a time.

    Cleaning each piece alone would let an escape sequence split across two deltas through
    half-removed (``ESC [ 3`` then ``1m``: the second piece would show ``[31m``); cleaning the
    whole text again on every delta costs O(length) per delta. :meth:`feed` cleans the new piece
    and holds back only an escape sequence (or a ``\\r`` of a ``\\r\\n``) that the next piece may
    still complete; :meth:`flush` gives out what is held when the stream ends. The pieces it
    returns joined together equal ``clean`` of the whole text (escapes held back for more than
    :data:`HOLD_LIMIT` characters are cleaned as they stand).
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        """The cleaned text of ``piece`` that can be shown now (may be empty)."""
        text = self._held + piece
        cut = _unfinished_tail(text)
        if cut is None or len(text) - cut > HOLD_LIMIT:
            self._held = ""
            return clean(text)
        self._held = text[cut:]
        return clean(text[:cut])

    def flush(self) -> str:
        """The cleaned rest of what was held back (the stream has ended)."""
        held, self._held = self._held, ""
        return clean(held)


def _unfinished_tail(text: str) -> int | None:
    """Where the part of ``text`` that more text could still clean differently begins (None: nowhere)."""
    esc = text.rfind("\x1b")
    if esc >= 0:
        rest = text[esc + 1 :]
        if not rest or _CSI_PREFIX.fullmatch(rest) or _OPEN_STRING.fullmatch(rest):
            return esc
    return len(text) - 1 if text.endswith("\r") else None
