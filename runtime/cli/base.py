"""What every ``holdfast`` command shares: exit codes, the global options, loading the
configuration, the :class:`~runtime.host.runtime.Runtime` a command runs against, JSON lines out.

A command module imports from here and nowhere else in ``runtime.cli``; :mod:`runtime.cli.main`
imports the command modules. So the dependency only points one way and a new command cannot
create a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, NoReturn

import typer

from runtime.config import LoadedConfig, load_config
from runtime.config.paths import LOG_HINT, storage_error
from runtime.core.errors import AppError, ConfigError, ValidationError
from runtime.core.ids import validate_user_id
from runtime.core.logs import register_secret, setup_logging
from runtime.core.safe_text import escape_invisible

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime

EXIT_OK = 0
#: The command ran and failed: chat got no answer, an id was not found, a check is not healthy.
EXIT_FAILED = 1
#: Bad usage or invalid configuration: one line on stderr naming what is wrong, never a traceback.
EXIT_USAGE = 2
#: Interrupted (Ctrl-C): 128 + SIGINT, the shell convention.
EXIT_INTERRUPTED = 130

#: The exit codes as ``holdfast --help`` prints them (one paragraph per code).
EXIT_CODES_HELP = (
    "Exit codes:\n\n"
    "0    success\n\n"
    "1    the command failed: chat got no answer from the model (a refused or failing tool is not "
    "a failure: the model answers), an id was not found or belongs to another user, health is not "
    '"healthy", doctor found a failing check, a plugin failed to load (tools), memory is offline '
    "(memory search), a memory could not be stored, a file or directory Holdfast needs cannot be "
    "written (one line naming it and what to do)\n\n"
    "2    bad usage or invalid configuration (one line on stderr, never a traceback)\n\n"
    "130  interrupted (Ctrl-C)"
)

#: Help panel that lists the global options on every command's ``--help``.
GLOBAL_PANEL = "Global options"


class LogLevel(StrEnum):
    """The ``--log-level`` choices (matched case-insensitively)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


@dataclass
class GlobalOptions:
    """The options every command accepts, before or after its name and its arguments.

    One instance lives in the root ``typer.Context.obj``; every sub-context shares it. Each
    option is attached to the root and to every command (see :func:`runtime.cli.main.build_command`),
    and :func:`remember_global` records a value where it is given, so the innermost one wins:
    ``holdfast --user a memory add x --user b`` runs as ``b``. ``None`` means "not given".
    """

    config: str | None = None
    log_level: str | None = None
    preset: str | None = None
    base_url: str | None = None
    model: str | None = None
    redis_url: str | None = None
    user: str | None = None

    def overrides(self) -> dict[str, str | None]:
        """The config overrides these flags stand for (dotted keys, ``None`` = not given).

        A ``--base-url`` without ``--preset`` selects the ``openai`` preset: a URL names an
        OpenAI-compatible endpoint, not the embedded demo.
        """
        overrides = {
            "logging.level": self.log_level,
            "llm.preset": self.preset,
            "llm.base_url": self.base_url,
            "llm.model": self.model,
            "redis.url": self.redis_url,
            "agent.user": self.user,
        }
        if self.base_url and not self.preset:
            overrides["llm.preset"] = "openai"
        return overrides


#: Parameter names of the global options (the Click names of the root callback's parameters).
GLOBAL_NAMES = frozenset(f.name for f in fields(GlobalOptions))


def remember_global(ctx: typer.Context, param: typer.CallbackParam, value: str | LogLevel | None) -> None:
    """Parameter callback of every global option: record a given value on the shared options.

    Click calls it once per command level that declares the option, outermost first, so a value
    given after the command name overrides one given before it. Values are not passed on to the
    command function (the options are declared with ``expose_value=False``).

    ``--user`` is checked here (:func:`runtime.core.ids.validate_user_id`), while the line is
    parsed: a bad user id is the one usage error reported (exit 2), before anything the command
    itself checks (``holdfast chat --user ""`` names the user id, not the missing message).
    """
    if value is None or param.name is None:
        return
    if param.name == "user" and not ctx.resilient_parsing:
        try:
            validate_user_id(value, what="--user")
        except ValidationError as exc:  # worded as the configuration loader words it
            print(f"holdfast: command line: {exc.message}", file=sys.stderr)
            raise typer.Exit(EXIT_USAGE) from None
    setattr(ctx.ensure_object(GlobalOptions), param.name, value.value if isinstance(value, Enum) else value)


#: What pydantic puts before a validator's message (Typer 0.29 coerces values with pydantic).
_PYDANTIC_PREFIX = re.compile(r"\b(?:Value error|Assertion failed), ")


def user_text(message: str) -> str:
    """A Click or pydantic message as a user reads it: without pydantic's ``Value error, ``
    (or ``Assertion failed, ``) prefix, which names a Python exception, not the problem."""
    return _PYDANTIC_PREFIX.sub("", message)


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The merged global options of this invocation (empty ones when none were recorded)."""
    return ctx.ensure_object(GlobalOptions)


def usage_error(ctx: typer.Context, message: str) -> NoReturn:
    """Print ``holdfast <command>: <message>`` on stderr and exit 2 (:data:`EXIT_USAGE`).

    For what the parser cannot check (an empty message, two options that exclude each other).
    Raises :class:`typer.Exit`.
    """
    print(f"{ctx.command_path}: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def load(ctx: typer.Context) -> LoadedConfig:
    """Load the configuration with the global options applied, then start file logging.

    Layers: ``config.toml`` < user config < ``--config`` < ``HOLDFAST_*`` env < flags (see
    :mod:`runtime.config`). An invalid configuration prints one line and exits 2 (raises
    :class:`typer.Exit`).
    """
    opts = global_options(ctx)
    try:
        loaded = load_config(config_file=opts.config, overrides=opts.overrides())
    except ConfigError as exc:
        print(f"holdfast: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None
    cfg = loaded.config
    register_secret(cfg.llm.resolve_api_key())
    try:
        setup_logging(cfg.log_path, cfg.logging.level, max_bytes=cfg.logging.max_bytes, backups=cfg.logging.backups)
    except OSError as exc:
        failed(storage_error(exc, "write the log file", cfg.log_path, LOG_HINT))
    return loaded


def failed(error: AppError, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``holdfast: <the error's one line>`` on stderr and exit with ``code`` (raises :class:`typer.Exit`)."""
    print(f"holdfast: {error.user_message()}", file=sys.stderr)
    raise typer.Exit(code)


def show_notices(rt: Runtime) -> None:
    """Print what the runtime found that the user must hear once (damaged journal records moved
    to quarantine), one ``holdfast: <notice>`` line each on stderr."""
    if rt.started:
        for notice in rt.store.take_notices():
            print(f"holdfast: {notice}", file=sys.stderr)


def with_runtime(
    ctx: typer.Context, body: Callable[[Runtime], Awaitable[int]], *, start: bool = True, llm: bool = True
) -> int:
    """Build a Runtime from the configuration, run ``body`` against it and return its exit code.

    ``start=False`` runs ``body`` on the built but unstarted Runtime (tool registry and plugins
    only; no Redis, no LLM). ``llm=False`` is for a command that never calls the model (memory,
    conversations, sessions, keys): the embedded demo LLM server is not started for it
    (:attr:`Runtime.start_demo_llm`), a second or so less per command. An :class:`AppError` prints its one-line user message and gives
    :data:`EXIT_FAILED` (:data:`EXIT_USAGE` for a :class:`ConfigError`, or a user name the
    user-id rule refuses); a file-system failure prints one line naming the path and what to do
    (:data:`EXIT_FAILED`), never a traceback. Notices the runtime has for the user (a damaged
    journal record) are printed on stderr. Owns the event loop (``asyncio.run``), so call it
    from a plain command function.
    """
    config = load(ctx).config
    user = global_options(ctx).user

    async def run() -> int:
        from runtime.host.runtime import Runtime

        try:
            try:
                rt = Runtime.from_config(config, user=user, start_monitor=False)
            except ValidationError as exc:  # the OS user name is not a valid user id
                print(f"holdfast: {exc.user_message()}", file=sys.stderr)
                return EXIT_USAGE
            rt.start_demo_llm = llm
            if not start:
                return await body(rt)
            async with rt:
                show_notices(rt)
                try:
                    return await body(rt)
                finally:
                    show_notices(rt)
        except ConfigError as exc:
            print(f"holdfast: {exc.user_message()}", file=sys.stderr)
            return EXIT_USAGE
        except AppError as exc:
            print(f"holdfast: {exc.user_message()}", file=sys.stderr)
            return EXIT_FAILED
        except BrokenPipeError:
            raise  # the reader of stdout left (`holdfast mcp list | head`): not the data dir's fault
        except OSError as exc:  # a file or directory the runtime needs (data dir, LanceDB, ...)
            where = exc.filename or config.data_path  # a failed write may not name its file
            print(f"holdfast: {storage_error(exc, 'use', where).user_message()}", file=sys.stderr)
            return EXIT_FAILED

    return asyncio.run(run())


def write_json(data: object) -> None:
    """Write ``data`` as one JSON line on stdout (UTF-8 as is, but invisible bidi and control
    characters as ``\\uXXXX`` escapes so a terminal shows the text in its stored order; unknown
    types via ``str``)."""
    sys.stdout.write(escape_invisible(json.dumps(data, ensure_ascii=False, default=str)) + "\n")


def stdout_closed() -> int:
    """The reader of stdout left (``holdfast chat --json ... | head``): not our failure, exit 0.

    Points stdout at /dev/null so the interpreter's final flush does not raise again.
    """
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK
