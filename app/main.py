"""Entry point of the Textual app (``holdfast`` with no subcommand)."""

from __future__ import annotations

import asyncio
import signal
import warnings

from textual.app import App

from runtime.config import LoadedConfig


def install_exit_signals(app: App[object]) -> None:
    """SIGTERM, SIGINT and SIGHUP end the app the way Ctrl+Q does, so backends stop cleanly.

    Call from the app's ``on_mount`` (it needs the running loop).
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, app.exit)


def run_app(loaded: LoadedConfig) -> int:
    from app.chat_app import HoldfastApp

    # lancedb warns on every fork; our forks (redis-server, the demo LLM) exec at once, and a
    # warning printed to stderr would tear the full-screen UI.
    warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)

    app = HoldfastApp(loaded)
    app.run()
    return app.return_code or 0
