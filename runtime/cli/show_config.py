"""``holdfast config``: the effective configuration and where each value came from.

Secrets are masked (see :func:`runtime.config.effective_items`). The header names the config
files read, the data dir, the log file and the memory location.
"""

from __future__ import annotations

import sys
from typing import TextIO

import typer

from runtime.cli.base import EXIT_OK, load
from runtime.config import LoadedConfig, effective_items


def print_config(loaded: LoadedConfig, out: TextIO) -> int:
    """Write ``key  value    # source`` lines for every setting to ``out``; returns exit code 0."""
    cfg = loaded.config
    out.write(f"# config files read: {', '.join(map(str, loaded.files)) or 'none'}\n")
    out.write(f"# data dir: {cfg.data_path}\n# log file: {cfg.log_path}\n# memory: {cfg.memory_uri}\n\n")
    rows = effective_items(loaded)
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        out.write(f"{key.ljust(width)}  {value}    # {source}\n")
    return EXIT_OK


def config(ctx: typer.Context) -> int:
    """Print the effective configuration and where each value came from."""
    return print_config(load(ctx), sys.stdout)


def register(root: typer.Typer) -> None:
    """Add ``config`` to the root command."""
    root.command("config")(config)
