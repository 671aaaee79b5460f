"""Copying text out of the chat: OSC 52 through the terminal, and the system clipboard too.

OSC 52 (Textual's :meth:`App.copy_to_clipboard`) works over SSH and in most terminals, but some
refuse it (macOS Terminal, tmux without ``set-clipboard``) and nothing says whether it landed.
So the text also goes to the system clipboard when this machine has a way to reach one:
pyperclip picks ``wl-copy`` (Wayland), ``xclip`` or ``xsel`` (X11, with ``$DISPLAY`` set),
``pbcopy`` (macOS) or the Windows API. The notice says which of the two it used.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import pyperclip

log = logging.getLogger(__name__)

#: pyperclip's copy function names -> the tool a person recognises.
_TOOL_NAMES = {
    "copy_xclip": "xclip",
    "copy_xsel": "xsel",
    "copy_wl": "wl-copy",
    "copy_osx_pbcopy": "pbcopy",
    "copy_osx_pyobjc": "macOS pasteboard",
    "copy_windows": "Windows clipboard",
    "copy_wsl": "clip.exe",
    "copy_klipper": "Klipper",
    "copy_qt": "Qt clipboard",
    "copy_dev_clipboard": "/dev/clipboard",
}


class TerminalClipboard(Protocol):
    """What copying needs from the app: Textual's OSC 52 copy."""

    def copy_to_clipboard(self, text: str) -> None: ...


def system_copy(text: str) -> str | None:
    """Put ``text`` on the system clipboard; returns the tool used (``"xclip"``), or None when
    this machine has none (no display, no tool) or the tool failed (logged). Blocking: it may
    run a child process (call it in a thread)."""
    try:
        copy, _paste = pyperclip.determine_clipboard()
        copy(text)
    except (pyperclip.PyperclipException, OSError) as exc:
        log.info("no system clipboard: %s", exc)
        return None
    name = getattr(copy, "__name__", "")
    return _TOOL_NAMES.get(name, name.removeprefix("copy_") or "system clipboard")


async def copy_text(app: TerminalClipboard, text: str) -> str:
    """Copy ``text`` through OSC 52 and, when there is one, the system clipboard; returns the
    notice saying how (``"copied 12 characters (OSC 52 and xclip)"``)."""
    app.copy_to_clipboard(text)
    tool = await asyncio.to_thread(system_copy, text)
    how = f"OSC 52 and {tool}" if tool else "OSC 52 only: no system clipboard tool found; your terminal must allow it"
    return f"copied {len(text):,} characters ({how})"
