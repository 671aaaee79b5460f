"""The ``holdfast`` command line: the TUI by default, plus headless subcommands.

Subcommands: config, doctor, demo-llm, chat, conversations, memory, health, tools
(see :mod:`runtime.cli.commands`). Every command takes ``--user NAME`` (before or after the
subcommand), which scopes conversations and memories.

Exit codes (also printed by ``holdfast --help``): see :data:`EXIT_CODES_HELP`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from runtime.config import LoadedConfig, effective_items, load_config
from runtime.core.errors import ConfigError
from runtime.core.logs import register_secret, setup_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES_HELP = """exit codes:
  0    success
  1    the command failed: chat got no answer from the model (a refused or failing tool is
       not a failure: the model answers), an id was not found or belongs to another user,
       health is not "healthy", a plugin failed to load (tools)
  2    bad usage or invalid configuration (one line on stderr, never a traceback)
  130  interrupted (Ctrl-C)"""


def package_version() -> str:
    try:
        return version("holdfast")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="holdfast",
        description="A terminal chat with an LLM that does not fall over.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"holdfast {package_version()}")
    parser.add_argument("--config", metavar="PATH", help="extra config file (above the user config, below env)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    parser.add_argument("--preset", help="LLM endpoint preset: openai, ollama, vllm, llamacpp, lmstudio, demo")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint URL")
    parser.add_argument("--model", help="model name")
    parser.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    parser.add_argument("--user", help="user name that scopes conversations and memories")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("config", help="print the effective configuration and where each value came from")
    sub.add_parser("doctor", help="check every backend and print a verdict")
    from runtime.cli.commands import add_subcommands

    add_subcommands(sub)
    demo = sub.add_parser("demo-llm", help="run the offline demo/chaos LLM server", add_help=False)
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        "logging.level": args.log_level,
        "llm.preset": args.preset,
        "llm.base_url": args.base_url,
        "llm.model": args.model,
        "redis.url": args.redis_url,
        "agent.user": args.user,
    }
    if args.base_url and not args.preset:
        overrides["llm.preset"] = "openai"
    return overrides


def print_config(loaded: LoadedConfig, out: TextIO) -> int:
    cfg = loaded.config
    out.write(f"# config files read: {', '.join(map(str, loaded.files)) or 'none'}\n")
    out.write(f"# data dir: {cfg.data_path}\n# log file: {cfg.log_path}\n# memory: {cfg.memory_uri}\n\n")
    rows = effective_items(loaded)
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        out.write(f"{key.ljust(width)}  {value}    # {source}\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "demo-llm":
        from runtime.demo.server import run_cli

        return run_cli(args.demo_args)

    try:
        loaded = load_config(config_file=args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"holdfast: {exc}", file=sys.stderr)
        return EXIT_USAGE
    cfg = loaded.config
    register_secret(cfg.llm.resolve_api_key())
    setup_logging(cfg.log_path, cfg.logging.level, max_bytes=cfg.logging.max_bytes, backups=cfg.logging.backups)

    try:
        if args.command == "config":
            return print_config(loaded, sys.stdout)
        if args.command == "doctor":
            from runtime.cli.doctor import print_report, run_doctor

            return print_report(asyncio.run(run_doctor(cfg)), sys.stdout)
        if args.command in ("chat", "conversations", "memory", "health", "tools"):
            from runtime.cli.commands import run_command

            return asyncio.run(run_command(args, cfg))
        from app.main import run_app

        return run_app(loaded)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `holdfast chat --json ... | head`: the reader left; that is not our failure. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
