"""An external example plugin package, discovered through its ``holdfast.plugins`` entry point."""

from __future__ import annotations

from runtime.tools import tool


@tool
def shout(text: str) -> str:
    """Repeat the text in capitals.

    Args:
        text: What to shout.
    """
    return text.upper() + "!"
