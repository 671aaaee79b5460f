"""The ``holdfast`` command tree: the root command, its global options, and running it.

:func:`run` parses ``argv``, runs one command and returns its exit code (see
:data:`runtime.cli.base.EXIT_CODES_HELP`); the console entry point (:func:`app.main.main`) calls
it with the TUI launcher as ``open_ui``, which runs when no command is given.

Global options (``--config``, ``--log-level``, ``--preset``, ``--base-url``, ``--model``,
``--redis-url``, ``--user``) are declared once, on the root callback, and
:func:`build_command` attaches the same option objects to every group and command of the built
Click tree. Each carries the callback :func:`runtime.cli.base.remember_global`, which records
the value on the one shared :class:`~runtime.cli.base.GlobalOptions`, so an option is accepted
before the command, between a group and its command, and after the arguments, and the one
given last on the line wins. Commands read the merged values through ``load(ctx)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
import typer.main
from typer.core import TyperGroup

from runtime.cli import (
    chat,
    conversations,
    demo,
    doctor,
    health,
    keys,
    mcp,
    memory,
    serve,
    sessions,
    show_config,
    tools,
)
from runtime.cli.base import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    GLOBAL_NAMES,
    GLOBAL_PANEL,
    LogLevel,
    load,
    remember_global,
    stdout_closed,
    usage_error,
)
from runtime.config import LoadedConfig

#: What ``holdfast`` runs when no command is given (the console entry point passes the TUI).
OpenUI = Callable[[LoadedConfig], int]

#: The command modules, in the order ``holdfast --help`` lists them. Each has
#: ``register(root)``, which adds its command or group to the root.
COMMANDS = (chat, conversations, memory, sessions, health, tools, mcp, show_config, doctor, demo, serve, keys)

PROG = "holdfast"


def package_version() -> str:
    """The installed distribution's version, or ``0+unknown`` when running from a bare tree."""
    try:
        return version("holdfast")
    except PackageNotFoundError:
        return "0+unknown"


def _show_version(value: bool) -> None:
    if value:
        print(f"{PROG} {package_version()}")
        raise typer.Exit(EXIT_OK)


def _global(help_text: str, metavar: str | None = None) -> typer.models.OptionInfo:
    return typer.Option(
        help=help_text,
        metavar=metavar,
        case_sensitive=False,
        rich_help_panel=GLOBAL_PANEL,
        callback=remember_global,
        expose_value=False,
        show_default=False,
    )


Version = Annotated[
    bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
]
ConfigFile = Annotated[str | None, _global("Extra config file (above the user config, below HOLDFAST_* env).", "PATH")]
Level = Annotated[LogLevel | None, _global("Log level of the log file.")]
Preset = Annotated[str | None, _global("LLM endpoint preset: openai, ollama, vllm, llamacpp, lmstudio, demo.")]
BaseUrl = Annotated[str | None, _global("OpenAI-compatible endpoint URL (implies --preset openai).", "URL")]
Model = Annotated[str | None, _global("Model name.")]
RedisUrl = Annotated[str | None, _global("Use this Redis instead of the embedded one.", "URL")]
User = Annotated[
    str | None, _global("User name that scopes conversations and memories (default: the OS user).", "NAME")
]


def build_app(open_ui: OpenUI | None = None) -> typer.Typer:
    """The Typer app: the root callback (global options, ``--version``) and every command.

    With no command, the root runs ``open_ui`` on the loaded configuration and returns its exit
    code; without ``open_ui`` (headless use) it says a command is missing and exits 2.
    """
    root = typer.Typer(
        name=PROG,
        help="A terminal chat with an LLM that does not fall over. With no command: the chat (TUI).",
        epilog=EXIT_CODES_HELP,
        invoke_without_command=True,
        no_args_is_help=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @root.callback()
    def holdfast(
        ctx: typer.Context,
        version_: Version = False,
        config: ConfigFile = None,
        log_level: Level = None,
        preset: Preset = None,
        base_url: BaseUrl = None,
        model: Model = None,
        redis_url: RedisUrl = None,
        user: User = None,
    ) -> int:
        # The global options are not passed in (expose_value=False): remember_global recorded
        # them on ctx.obj, where load(ctx) reads them.
        if ctx.invoked_subcommand is not None:
            return EXIT_OK
        if open_ui is None:
            usage_error(ctx, "Missing command. See 'holdfast --help'.")
        return open_ui(load(ctx))

    for module in COMMANDS:
        module.register(root)
    return root


def build_command(open_ui: OpenUI | None = None) -> TyperGroup:
    """The Click command tree of :func:`build_app`, with the global options on every command.

    Commands that forward their arguments (``demo-llm``) get none: everything after their name
    is theirs. Every command's callback is wrapped by :func:`_outcomes`.
    """
    command = typer.main.get_command(build_app(open_ui))
    assert isinstance(command, TyperGroup)
    shared = [param for param in command.params if param.name in GLOBAL_NAMES]

    def attach(group: TyperGroup) -> None:
        for sub in group.commands.values():
            if sub.context_settings.get("ignore_unknown_options"):
                continue
            sub.params.extend(shared)
            if isinstance(sub, TyperGroup):
                attach(sub)
            elif sub.callback is not None:
                sub.callback = _outcomes(sub.callback)

    attach(command)
    return command


def _outcomes(callback: Callable[..., object]) -> Callable[..., object]:
    """Map process-level endings of a command to exit codes: Ctrl-C is 130, and a reader that
    closed stdout (``holdfast chat --json ... | head``) is not a failure (0)."""

    def run(**params: object) -> object:
        try:
            return callback(**params)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            return stdout_closed()

    return run


def run(argv: Sequence[str] | None = None, *, open_ui: OpenUI | None = None) -> int:
    """Run ``holdfast`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    ``--help``, ``--version`` and completion requests return 0. Usage errors print one line
    (``holdfast memory add: Missing argument 'TEXT'. See 'holdfast memory add --help'.``) and
    return 2. Never raises for bad usage; ``SystemExit`` only comes from shell completion.
    """
    command = build_command(open_ui)
    try:
        code = command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name=PROG, standalone_mode=False)
    except typer.TyperException as exc:  # Click's errors; usage errors carry exit code 2
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else EXIT_OK


def _report(exc: typer.TyperException) -> None:
    """One line on stderr: the command path, Click's message, and where the help is."""
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else PROG
    hint = f" See '{path} --help'." if ctx is not None else ""
    print(f"{path}: {message.rstrip('.')}.{hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Headless ``holdfast``: every command; no command is a usage error (exit 2), not the chat."""
    return run(argv)
