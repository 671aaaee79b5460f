"""The ``holdfast`` console entry point: the chat (Textual TUI) when no command is given,
every command handed to :mod:`runtime.cli`.

``python -m app`` is the same entry point (see ``app/__main__.py``).
"""

from __future__ import annotations

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
    app.run()
    return app.return_code or 0


def main(argv: Sequence[str] | None = None) -> int:
    """``holdfast [global options] [COMMAND ...]``: run one command, or the chat when none is given.

    ``argv`` defaults to ``sys.argv[1:]``; returns the process exit code (see ``holdfast --help``).
    """
    from runtime.cli.main import run

    return run(argv, open_ui=run_app)


if __name__ == "__main__":
    raise SystemExit(main())
