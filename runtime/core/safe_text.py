"""Untrusted text (model, tool and memory output) made safe to print on a terminal.

``clean`` removes terminal escape sequences (CSI, OSC, DCS, single-character escapes) and other
control characters except newline and tab, so text from a model can never set the window
title, write the clipboard (OSC 52) or move the cursor. The TUI and the headless CLI both use it.
"""

from __future__ import annotations

import re

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
