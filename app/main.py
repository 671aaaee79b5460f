"""The ``holdfast`` console entry point: the chat (Textual TUI) when no command is given,
every command handed to :mod:`runtime.cli`.

``python -m app`` is the same entry point (see ``app/__main__.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import sys
import termios
import warnings
from collections.abc import Sequence

from runtime.config import LoadedConfig
from runtime.core.safe_text import clean

#: Lines read at most from what was typed before the chat started (a paste can be long).
MAX_TYPED_AHEAD_LINES = 1000


def typed_ahead(fd: int) -> list[str]:
    """The lines typed on terminal ``fd`` before the chat took it over, read (and so removed)
    from its input queue; [] when ``fd`` is not a terminal or nothing whole was typed.

    Until Textual switches the terminal to raw mode it is in line mode: the terminal turns Enter
    into a line feed, which the app reads as Ctrl+J (a newline in the composer), so a message
    typed and sent while Holdfast was starting stayed unsent. In line mode only whole lines can
    be read; what was typed after the last Enter stays queued and reaches the composer as keys.
    Escapes (arrow keys) and control characters are removed from each line; blank lines dropped.
    """
    if fd < 0 or not os.isatty(fd):
        return []
    chunks: list[bytes] = []
    try:
        # In line mode a read returns at most one line: read until nothing whole is left.
        while len(chunks) < MAX_TYPED_AHEAD_LINES:
            waiting = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
            if waiting <= 0:
                break
            blocking = os.get_blocking(fd)
            os.set_blocking(fd, False)
            try:
                chunk = os.read(fd, waiting)
            except BlockingIOError:  # only an unfinished line is queued
                break
            finally:
                os.set_blocking(fd, blocking)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return []
    data = b"".join(chunks)
    lines = (clean(line).replace("\t", " ").strip() for line in data.decode(errors="replace").split("\n"))
    return [line for line in lines if line]


def run_app(loaded: LoadedConfig) -> int:
    """Run the chat on ``loaded`` (global options already applied) until it exits; returns its exit code."""
    from app.chat_app import HoldfastApp

    # lancedb warns on every fork; our forks (redis-server, the demo LLM) exec at once, and a
    # warning printed to stderr would tear the full-screen UI.
    warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)

    try:
        stdin = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no stdin, or a closed one
        stdin = -1
    app = HoldfastApp(loaded, typed_ahead=typed_ahead(stdin))
    app.exit_watchdog = True
    # Our own loop, given to Textual, which then only runs it until the app is done: asyncio.run
    # would go on to cancel and await every task left (the runtime's stop, past its budget) and
    # wait for the default executor's threads (stopping the demo server), 0.2-0.3 s of a
    # mid-stream quit spent after the data was safe and the terminal restored.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app.run(loop=loop)
    code = app.return_code or 0
    # The data is safe once the app's shutdown is done (the partial reply saved, the runtime's
    # clients closed); skip the interpreter's teardown of LanceDB, Arrow and tokenizer state
    # (over a second) and leave the embedded servers to their death signal and the data dir's
    # watchdog: quitting takes well under half a second.
    if app.data_safe.wait(1.0):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        logging.shutdown()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``holdfast [global options] [COMMAND ...]``: run one command, or the chat when none is given.

    ``argv`` defaults to ``sys.argv[1:]``; returns the process exit code (see ``holdfast --help``).
    """
    from runtime.cli.main import run

    return run(argv, open_ui=run_app)


if __name__ == "__main__":
    raise SystemExit(main())
