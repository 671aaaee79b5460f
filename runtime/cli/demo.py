"""``holdfast demo-llm [--port N] [fault flags]``: run the offline demo/chaos LLM server.

The demo server owns its flags: :mod:`runtime.demo.server` parses them (the same parser serves
``python -m runtime.demo.server``, which is how Holdfast spawns its own demo server). This
command hands every argument after ``demo-llm`` to it untouched, so each fault flag the server
gains works here at once and ``holdfast demo-llm --help`` is the server's own help. Hence the
global options do not apply to it: the server reads no Holdfast configuration.
"""

from __future__ import annotations

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK

#: Click settings of a command that forwards its arguments: unknown options and extra
#: arguments are kept in ``ctx.args`` in order, and ``--help``/``-h`` are forwarded too.
FORWARD_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def demo_llm(ctx: typer.Context) -> int:
    """Run the offline demo/chaos LLM server (OpenAI-compatible; see `holdfast demo-llm --help`)."""
    from runtime.demo.server import run_cli

    try:
        return run_cli(list(ctx.args))
    except SystemExit as exc:  # argparse exits for --help (0) and bad flags (2, usage + one line)
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED


def register(root: typer.Typer) -> None:
    """Add ``demo-llm`` to the root command."""
    root.command("demo-llm", context_settings=FORWARD_ARGS, add_help_option=False)(demo_llm)
