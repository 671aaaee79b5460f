"""Literal rendering of untrusted text (model, tool and memory output).

Text from the model, tools or memories must reach the screen exactly as typed: never parsed
as Rich/Textual markup and never able to drive the terminal. ``clean`` removes terminal escape
sequences (CSI, OSC, DCS, single-character escapes) and other control characters except newline
and tab; ``literal`` wraps the result in a ``rich.text.Text`` so no markup is interpreted.
"""

from __future__ import annotations

import re

from rich.text import Text

# ESC-based sequences: CSI (ESC [ ... final), OSC/DCS/PM/APC/SOS (ESC ] ... BEL or ST),
# then any other two-character escape. 8-bit C1 equivalents are handled by _CONTROL below.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b"
)
# C0 controls except \t and \n, DEL, and the C1 block (0x80-0x9f): none is printable.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def clean(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (``\\r\\n`` -> ``\\n``)."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n")
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    return _CONTROL.sub("", text)


def literal(text: str, style: str = "") -> Text:
    """A ``Text`` showing ``text`` verbatim (markup characters included), escapes removed."""
    return Text(clean(text), style=style)


def one_line(text: str, limit: int = 120) -> str:
    """First line of ``clean(text)``, shortened to ``limit`` characters with an ellipsis."""
    line = clean(text).strip().splitlines()[0] if text and text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
