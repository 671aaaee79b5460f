"""``holdfast sessions [--user NAME] [--json]``: the user's live sessions, one per running Holdfast.

Every TUI or CLI process holds a session while it runs (see :mod:`runtime.host.session_keeper`):
which face it is (``tui``/``cli``), its pid and host, the conversation it shows, when it was last
seen and when the session expires unless refreshed. This command's own short-lived session is
not listed. Scoped to ``--user`` (default: the configured or OS user): nobody sees another
user's sessions without naming that user. Exit 0 (also when none is live), 1 when Redis is out.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.cli.base import EXIT_OK, with_runtime, write_json

if TYPE_CHECKING:
    from runtime.host.facade import SessionInfo
    from runtime.host.runtime import Runtime

Json = Annotated[bool, typer.Option("--json", help="One JSON object per session instead of a table.")]


def sessions(ctx: typer.Context, json_: Json = False) -> int:
    """List the user's live sessions (TUI and CLI processes), most recently seen first."""

    async def body(rt: Runtime) -> int:
        listed = [s for s in await rt.list_sessions() if not s.current]
        if json_:
            for session in listed:
                write_json(session.to_dict())
        else:
            sys.stdout.write(format_table(listed, now=time.time()))
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


def format_table(listed: list[SessionInfo], *, now: float) -> str:
    """A plain-text table of ``listed`` (``now`` in epoch seconds, for the ages), or a one-line
    "no live sessions" note."""
    if not listed:
        return "no live sessions\n"
    rows = [("SESSION", "FACE", "PID", "HOST", "CONVERSATION", "LAST SEEN", "EXPIRES IN")]
    for s in listed:
        rows.append(
            (
                s.id[:12],
                s.face,
                str(s.pid) if s.pid is not None else "-",
                s.host,
                s.active_conversation_id or "-",
                f"{_age(now - s.last_seen)} ago",
                _age(s.expires_at - now),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def _age(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def register(root: typer.Typer) -> None:
    """Add ``sessions`` to the root command."""
    root.command("sessions")(sessions)
