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

import difflib
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
import typer.completion
import typer.main
from typer._completion_shared import _get_shell_name
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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
    user_text,
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


class Shell(StrEnum):
    """The shells ``--show-completion``/``--install-completion`` write a script for (Typer's)."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"
    POWERSHELL = "powershell"
    PWSH = "pwsh"


#: The root options that take a shell; given bare, :func:`run` fills in the detected one.
COMPLETION_OPTIONS = ("--show-completion", "--install-completion")


def _show_completion(ctx: typer.Context, param: typer.CallbackParam, value: Shell | None) -> None:
    if value is not None:
        typer.completion.show_callback(ctx, param, value.value)  # prints the script, exits 0


def _install_completion(ctx: typer.Context, param: typer.CallbackParam, value: Shell | None) -> None:
    if value is not None:
        typer.completion.install_callback(ctx, param, value.value)  # installs it, exits 0


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
ShowCompletion = Annotated[
    Shell | None,
    typer.Option(
        "--show-completion",
        metavar="[SHELL]",
        callback=_show_completion,
        expose_value=False,
        is_eager=True,
        case_sensitive=False,
        show_default=False,
        help="Print the completion script of SHELL (bash, zsh, fish, powershell, pwsh; default: this shell).",
    ),
]
InstallCompletion = Annotated[
    Shell | None,
    typer.Option(
        "--install-completion",
        metavar="[SHELL]",
        callback=_install_completion,
        expose_value=False,
        is_eager=True,
        case_sensitive=False,
        show_default=False,
        help="Install completion for SHELL (default: this shell).",
    ),
]
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
        show_completion_: ShowCompletion = None,
        install_completion_: InstallCompletion = None,
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
    # Typer's own completion flags ignore a shell name (``--show-completion zsh`` printed the
    # bash script): the root declares its own, which take one.
    command.params = [p for p in command.params if p.name not in ("show_completion", "install_completion")]
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
    _plain_help(command)
    return command


# ---------------------------------------------------------------- help as plain Typer help

#: Typer's type labels in help (``<str>``) as Click names them (``TEXT``).
_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}


def _type_label(label: str | None) -> str | None:
    """``<str>`` -> ``TEXT``, ``<a|b>`` -> ``[a|b]`` (a choice), anything else as given."""
    if not label or not (label.startswith("<") and label.endswith(">")):
        return label
    inner = label[1:-1]
    if "|" in inner:
        return f"[{inner}]"
    return _TYPE_NAMES.get(inner, inner.upper())


class _PlainOption(TyperOption):
    """An option whose help shows no type for a flag and Click's type names otherwise."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:  # type: ignore[override]
        """None for a flag (no ``<bool>``); the metavar, else ``TEXT``/``INTEGER``/``[a|b]``."""
        if self.is_flag:
            return None
        return _type_label(super().display_type_rich(ctx))


class _PlainArgument(TyperArgument):
    """An argument shown as ``TEXT`` (required) or ``[TEXT]`` (optional) in the usage line."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 else f"{name}..."

    def display_type_rich(self, ctx: typer.Context) -> str | None:  # type: ignore[override]
        """None when the metavar names the argument already (``TEXT``), else Click's type name."""
        return None if self.metavar is not None else _type_label(super().display_type_rich(ctx))


class _PlainCommand(TyperCommand):
    """A command whose ``--help`` option is listed without a type."""

    def get_help_option(self, ctx: typer.Context) -> TyperOption | None:  # type: ignore[override]
        """Click's help option, shown as a plain flag."""
        option = super().get_help_option(ctx)
        if option is not None:
            option.__class__ = _PlainOption
        return option


class _PlainGroup(TyperGroup):
    """A group whose ``--help`` option is listed without a type."""

    def get_help_option(self, ctx: typer.Context) -> TyperOption | None:  # type: ignore[override]
        """Click's help option, shown as a plain flag."""
        option = super().get_help_option(ctx)
        if option is not None:
            option.__class__ = _PlainOption
        return option


def _plain_help(command: TyperCommand | TyperGroup) -> None:
    """Make the tree's help read like plain Typer help: flags without a ``<bool>`` type, values
    as ``TEXT``/``INTEGER``, arguments as ``TEXT`` (not ``{TEXT}``) in the usage line.

    Typer 0.29 renders those labels itself; this swaps the classes of the built parameters and
    commands for subclasses that only change how they are displayed (parsing is untouched).
    """
    for param in command.params:
        if isinstance(param, TyperOption):
            param.__class__ = _PlainOption
        elif isinstance(param, TyperArgument):
            param.__class__ = _PlainArgument
    if isinstance(command, TyperGroup):
        command.__class__ = _PlainGroup
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                _plain_help(sub)
    else:
        command.__class__ = _PlainCommand


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
    return 2, with Click's and pydantic's wording cleaned (:func:`~runtime.cli.base.user_text`)
    and an unknown option followed only by close spellings. Never raises for bad usage;
    ``SystemExit`` only comes from shell completion (``--show-completion [SHELL]``, which prints
    the script and exits 0).
    """
    command = build_command(open_ui)
    args = _completion_shell(list(sys.argv[1:] if argv is None else argv), set(command.commands))
    try:
        code = command.main(args=args, prog_name=PROG, standalone_mode=False)
    except typer.TyperException as exc:  # Click's errors; usage errors carry exit code 2
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else EXIT_OK


def _completion_shell(args: list[str], commands: set[str]) -> list[str]:
    """``args`` with the detected shell after a bare ``--show-completion``/``--install-completion``
    (at the end, or before an option or a command), as Typer's own flags did; a shell given is
    kept. Nothing is added when the shell cannot be detected (Click then says a value is missing)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        out.append(arg)
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in COMPLETION_OPTIONS and (following is None or following.startswith("-") or following in commands):
            shell = _get_shell_name()
            if shell is not None:
                out.append(shell)
    return out


def _close_options(name: str, ctx: typer.Context) -> list[str]:
    """The long options of ``ctx``'s command spelled close to ``name`` (at most 3, best first).

    Compared without the leading dashes (``difflib``, ratio >= 0.6): with them every pair of
    long options shares ``--``, and ``--bogus`` came out "close" to ``--user``.
    """
    options = {
        opt.lstrip("-"): opt
        for param in ctx.command.get_params(ctx)
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--")
    }
    return [options[m] for m in difflib.get_close_matches(name.lstrip("-"), list(options), n=3, cutoff=0.6)]


def _report(exc: typer.TyperException) -> None:
    """One line on stderr: the command path, Click's message, and where the help is."""
    ctx = getattr(exc, "ctx", None)
    option_name = getattr(exc, "option_name", None)
    if ctx is not None and isinstance(option_name, str) and hasattr(exc, "possibilities"):
        exc.possibilities = _close_options(option_name, ctx)  # "No such option": only close matches
    message = user_text(exc.format_message())
    path = ctx.command_path if ctx is not None else PROG
    hint = f" See '{path} --help'." if ctx is not None else ""
    print(f"{path}: {message.rstrip('.')}.{hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Headless ``holdfast``: every command; no command is a usage error (exit 2), not the chat."""
    return run(argv)
