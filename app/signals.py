"""Process signals for the Textual app: end it the way Ctrl+Q does, so backends stop cleanly.

Its own module so that :mod:`app.chat_app` need not import the console entry point
(:mod:`app.main` imports the app; the app importing it back would be a cycle).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol


class Exitable(Protocol):
    """An app that can be asked to exit (a Textual ``App``)."""

    def exit(self) -> None: ...


def install_exit_signals(app: Exitable) -> None:
    """SIGTERM, SIGINT and SIGHUP call ``app.exit()``, as Ctrl+Q does: the streaming reply's partial
    text is saved, the runtime stops and the process exits with code 0, within 2 s even when the
    terminal is gone (:meth:`app.chat_app.HoldfastApp.exit` starts a watchdog).

    Call from the app's ``on_mount``: it needs the running event loop (RuntimeError otherwise).
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, app.exit)
