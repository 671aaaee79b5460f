"""Slash commands: the table of what exists, and parsing of one composer line into a call.

Parsing is pure (no app, no runtime) so every rule is testable on its own; the handlers live
in :mod:`app.command_handlers`. A bad line yields a :class:`CommandError` whose message is the
one-line hint shown to the user.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

#: A parsed option value: a text (``path``), a flag (``on``), a number (a fault's seconds, rate, status).
OptionValue = str | bool | float | int


class CommandError(ValueError):
    """A line that is not a valid command; ``str(exc)`` is the one-line hint."""


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    min_args: int = 0
    max_args: int | None = 0
    #: The rest of the line is one free-text argument (``/system you are terse``).
    free_text: bool = False


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("new", "/new", "start a new conversation"),
        CommandSpec("system", "/system <prompt>", "set the system prompt of this conversation", 1, 1, True),
        CommandSpec("model", "/model [name]", "pick this conversation's model (Ctrl+O), or name one", 0, 1),
        CommandSpec("retry", "/retry", "resend the last user message"),
        CommandSpec(
            "edit", "/edit [SEQ|cancel]", "edit your last (or message #SEQ) and resend it as a new branch", 0, 1
        ),
        CommandSpec("continue", "/continue", "ask the model to go on where its reply was cut off"),
        CommandSpec(
            "summarize", "/summarize [--force]", "summarise the older part (--force: below the threshold too)", 0, 1
        ),
        CommandSpec("memory", "/memory <query>", "search long-term memory", 1, 1, True),
        CommandSpec("remember", "/remember <text>", "store a long-term memory", 1, 1, True),
        CommandSpec("forget", "/forget <id>", "delete a memory by id (or its first characters)", 1, 1),
        CommandSpec("tools", "/tools", "list the registered tools"),
        CommandSpec("export", "/export [md|json] [path]", "export this conversation", 0, 2),
        CommandSpec("breakers", "/breakers reset [service]", "reset one or every circuit breaker", 1, 2),
        CommandSpec("health", "/health", "run every health check now"),
        CommandSpec("copy", "/copy", "copy the last reply to the clipboard"),
        CommandSpec(
            "chaos",
            "/chaos kill|start redis|llm · kill mcp NAME · faults k=v… · quirk PROFILE · memory on|off · reset",
            "break and heal backends for a demo",
            1,
            None,
        ),
        CommandSpec("help", "/help", "list the commands"),
    )
}

CHAOS_BACKENDS = ("redis", "llm")


@dataclass(frozen=True)
class Invocation:
    name: str
    args: tuple[str, ...]
    #: The raw text after the command name (for free-text commands).
    rest: str = ""
    options: dict[str, OptionValue] | None = None


def is_command(line: str) -> bool:
    """A line starting with one ``/`` followed by a letter (``//x`` and ``/ x`` are chat text)."""
    return bool(re.match(r"^/[A-Za-z]", line.lstrip()))


def parse(line: str) -> Invocation:
    """Parse ``/name args...``; raises :class:`CommandError` with a usage hint."""
    text = line.strip()
    head, _, rest = text[1:].partition(" ")
    name = head.lower()
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(f"unknown command /{head}; type /help for the list")
    rest = rest.strip()
    if spec.free_text:
        if not rest:
            raise CommandError(f"usage: {spec.usage}")
        return Invocation(name, (rest,), rest)
    try:
        args = tuple(shlex.split(rest)) if rest else ()
    except ValueError as exc:
        raise CommandError(f"{spec.usage}: {exc}") from exc
    if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
        raise CommandError(f"usage: {spec.usage}")
    if name == "export":
        return _export(args, rest)
    if name == "summarize":
        if args and args[0] not in ("--force", "-f", "force"):
            raise CommandError(f"usage: {spec.usage}")
        return Invocation(name, args, rest, {"force": bool(args)})
    if name == "breakers":
        if args[0] != "reset":
            raise CommandError(f"usage: {spec.usage}")
        return Invocation(name, args, rest)
    if name == "chaos":
        return _chaos(args, rest)
    if name == "edit" and args and args[0].lower() != "cancel":
        try:
            seq = int(args[0].lstrip("#"))
        except ValueError:
            raise CommandError(f"usage: {spec.usage} (SEQ is a message number, e.g. /edit 12)") from None
        return Invocation(name, args, rest, {"seq": seq})
    if name == "edit" and args:
        return Invocation(name, ("cancel",), rest, {"cancel": True})
    return Invocation(name, args, rest)


def _export(args: tuple[str, ...], rest: str) -> Invocation:
    fmt, path = "md", ""
    for arg in args:
        if arg.lower() in ("md", "markdown", "json") and fmt == "md" and not path:
            fmt = "json" if arg.lower() == "json" else "md"
        elif not path:
            path = arg
        else:
            raise CommandError(f"usage: {COMMANDS['export'].usage}")
    return Invocation("export", (fmt, path) if path else (fmt,), rest, {"format": fmt, "path": path})


def _chaos(args: tuple[str, ...], rest: str) -> Invocation:
    usage = f"usage: {COMMANDS['chaos'].usage}"
    action = args[0].lower()
    if action == "kill" and len(args) >= 2 and args[1].lower() == "mcp":
        if len(args) != 3:
            raise CommandError("usage: /chaos kill mcp NAME")
        return Invocation("chaos", ("kill", "mcp", args[2]), rest)
    if action in ("kill", "start"):
        if len(args) != 2 or args[1].lower() not in CHAOS_BACKENDS:
            raise CommandError(f"usage: /chaos {action} redis|llm")
        return Invocation("chaos", (action, args[1].lower()), rest)
    if action == "memory":
        if len(args) != 2 or args[1].lower() not in ("on", "off"):
            raise CommandError("usage: /chaos memory on|off")
        return Invocation("chaos", (action, args[1].lower()), rest, {"on": args[1].lower() == "on"})
    if action == "quirk":
        if len(args) != 2:
            raise CommandError("usage: /chaos quirk openai|ollama|llamacpp|vllm-reasoning|mistral|openrouter|...")
        return Invocation("chaos", (action, args[1].lower()), rest)
    if action == "reset":
        if len(args) != 1:
            raise CommandError("usage: /chaos reset")
        return Invocation("chaos", ("reset",), rest)
    if action == "faults":
        if len(args) < 3 or args[1].lower() != "llm":
            raise CommandError("usage: /chaos faults llm latency=2s errors=50% status=503")
        return Invocation("chaos", ("faults", "llm"), rest, parse_faults(args[2:]))
    raise CommandError(usage)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")

#: Fault names a person types -> the demo server's fault keys.
FAULT_KEYS = {"latency": "latency", "errors": "error_rate", "error_rate": "error_rate", "status": "error_status"}


def parse_duration(text: str) -> float:
    """``2s`` -> 2.0, ``250ms`` -> 0.25, ``1.5`` -> 1.5 (seconds)."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise CommandError(f"not a duration: {text!r} (e.g. 2s or 250ms)")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def parse_rate(text: str) -> float:
    """``50%`` -> 0.5, ``0.25`` -> 0.25; must be within 0..1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError as exc:
        raise CommandError(f"not a rate: {text!r} (e.g. 50% or 0.5)") from exc
    if not 0 <= value <= 1:
        raise CommandError(f"rate out of range: {text!r} (0% to 100%)")
    return value


def parse_faults(pairs: tuple[str, ...] | list[str]) -> dict[str, OptionValue]:
    """``latency=2s errors=50% status=503`` -> ``{"latency": 2.0, "error_rate": 0.5, "error_status": 503}``."""
    faults: dict[str, OptionValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or key not in FAULT_KEYS:
            raise CommandError(f"unknown fault {pair!r}; use latency=2s errors=50% status=503")
        target = FAULT_KEYS[key]
        if target == "latency":
            faults[target] = parse_duration(value)
        elif target == "error_rate":
            faults[target] = parse_rate(value)
        else:
            if not value.isdigit() or not 400 <= int(value) <= 599:
                raise CommandError(f"status must be an HTTP error code 400-599, got {value!r}")
            faults[target] = int(value)
    return faults


def help_lines() -> list[str]:
    return [f"{spec.usage:<38} {spec.summary}" for spec in COMMANDS.values()]
