"""The watchdog of one stdio MCP server: stops the server's process group once Holdfast is gone.

``PR_SET_PDEATHSIG`` sends the server SIGTERM when Holdfast dies, and its stdin reaches EOF, but a
server may ignore both, and a server started through a launcher (``npx``, ``uvx``, a shell
script) has children the death signal never reaches. So each spawn gets this small process (the
same idea as the embedded redis-server's watchdog): it reads its stdin, a pipe whose only writer
is Holdfast, until EOF, which comes when Holdfast closes it after stopping the server or when
Holdfast dies in any way (SIGKILL included). Then, if anything of the server's process group is
still alive, it sends the group SIGTERM, waits ``grace`` seconds, and sends SIGKILL.

Run by path with the standard library only (no Holdfast import, a few milliseconds to start)::

    python -I -S watchdog.py PGID GRACE

It runs in a session of its own (a Ctrl+C at the terminal does not end it) and ignores SIGINT
and SIGHUP.
"""

from __future__ import annotations

import os
import signal
import sys
import time

#: Seconds between checks while the group is given its grace.
POLL = 0.05


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is alive (a zombie not yet reaped counts)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, wait up to ``grace`` seconds for it to end, then SIGKILL what is left."""
    if not group_alive(pgid):
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(POLL)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def main(argv: list[str]) -> int:
    """``watchdog.py PGID GRACE``: wait for EOF on stdin, then :func:`stop_group`. Exit 2 for bad arguments."""
    try:
        pgid, grace = int(argv[1]), float(argv[2])
    except (IndexError, ValueError):
        print("usage: watchdog.py PGID GRACE_SECONDS", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass  # a broken stdin is as good as EOF: nobody can tell us the server is in good hands
    stop_group(pgid, grace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
