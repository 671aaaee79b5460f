"""The ``holdfast`` console entry point: the chat (Textual TUI) when no command is given,
every command handed to :mod:`runtime.cli`.

``python -m app`` is the same entry point (see ``app/__main__.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from runtime.config import LoadedConfig


def run_app(loaded: LoadedConfig) -> int:
    """Run the chat on ``loaded`` (global options already applied) until it exits; returns its exit code."""
    from app.chat_app import HoldfastApp

    # lancedb warns on every fork; our forks (redis-server, the demo LLM) exec at once, and a
    # warning printed to stderr would tear the full-screen UI.
    warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)

    app = HoldfastApp(loaded)
    app.exit_watchdog = True
    app.run()
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
