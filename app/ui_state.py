"""What the chat remembers between launches: the layout and theme the user chose, and their input
history.

One small JSON file per data dir (``ui-state.json``): ``{"layout": {"sidebar": bool, "panels":
bool}, "theme": name, "history": {user: [text, ...]}}``. It is UI state, not data: a missing or damaged file is
an empty state (logged), and a failed write is logged and never interrupts the chat. Writes go to
a temporary file that replaces the old one, so a crash mid-write cannot leave half a file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: The file name inside the data dir.
FILE_NAME = "ui-state.json"
#: Inputs remembered per user (oldest dropped first).
HISTORY_LIMIT = 500


@dataclass
class UiState:
    """The remembered layout and theme (None: not chosen yet, the config's default applies) and history."""

    sidebar: bool | None = None
    panels: bool | None = None
    #: A Textual theme name picked from the command palette.
    theme: str | None = None
    history: dict[str, list[str]] = field(default_factory=dict)


def load(data_dir: Path) -> UiState:
    """Read ``data_dir/ui-state.json``; an absent, unreadable or malformed file is an empty state."""
    path = data_dir / FILE_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UiState()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable UI state %s: %s", path, exc)
        return UiState()
    if not isinstance(raw, dict):
        return UiState()
    layout_raw, history_raw = raw.get("layout"), raw.get("history")
    layout: dict[str, object] = layout_raw if isinstance(layout_raw, dict) else {}
    if not isinstance(history_raw, dict):
        history_raw = {}
    history = {
        str(user): [str(item) for item in items if isinstance(item, str)][-HISTORY_LIMIT:]
        for user, items in history_raw.items()
        if isinstance(items, list)
    }
    sidebar = layout.get("sidebar")
    panels = layout.get("panels")
    theme = raw.get("theme")
    return UiState(
        sidebar=sidebar if isinstance(sidebar, bool) else None,
        panels=panels if isinstance(panels, bool) else None,
        theme=theme if isinstance(theme, str) and theme else None,
        history=history,
    )


def save(data_dir: Path, state: UiState) -> None:
    """Write ``state`` atomically to ``data_dir/ui-state.json``; an OSError is logged, not raised."""
    path = data_dir / FILE_NAME
    body = {
        "layout": {"sidebar": state.sidebar, "panels": state.panels},
        "theme": state.theme,
        "history": {user: items[-HISTORY_LIMIT:] for user, items in state.history.items()},
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save UI state to %s: %s", path, exc)
        with contextlib.suppress(OSError):  # a read-only data dir refuses the unlink too
            tmp.unlink(missing_ok=True)
