"""Headless subcommands of ``holdfast``: chat, conversations, memory, health, tools.

Each runs one :class:`runtime.host.runtime.Runtime` for the duration of the command. Exit codes
(see :mod:`runtime.cli`): 0 ok, 1 the command failed (turn failed, not found, backend down),
2 bad usage, 130 interrupted.

``chat`` writes the answer to stdout and tool calls, degraded notices and the conversation id
to stderr, so ``holdfast chat "..." > answer.txt`` keeps only the answer. ``--json`` writes
every turn event as one JSON line on stdout, each with ``type`` and ``conversation_id``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from runtime.config import Config
from runtime.core.errors import AppError, NotFoundError
from runtime.core.events import AssistantSaved, Degraded, TextDelta, ToolCallFinished, ToolCallStarted, TurnFailed
from runtime.core.safe_text import clean

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Actions of ``conversations`` that need an id.
_NEEDS_ID = ("show", "export", "delete")


def _user_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the subcommand it wins, absent it leaves the global --user alone.
    parser.add_argument(
        "--user",
        default=argparse.SUPPRESS,
        help="user name that scopes conversations and memories (default: the OS user)",
    )


def add_subcommands(sub: Any) -> None:
    chat = sub.add_parser("chat", help="send one message and stream the answer")
    chat.add_argument("message")
    chat.add_argument("--conversation", metavar="ID")
    chat.add_argument("--new", action="store_true", help="start a new conversation")
    chat.add_argument("--json", action="store_true", help="print the event stream as JSON lines")
    chat.add_argument("--yes", action="store_true", help="allow tools that ask for permission")
    conv = sub.add_parser("conversations", help="list, show, export or delete conversations")
    conv.add_argument("action", choices=["list", "show", "export", "delete"])
    conv.add_argument("id", nargs="?")
    conv.add_argument(
        "--format", choices=["markdown", "md", "json"], default="markdown", help="export format (default: markdown)"
    )
    mem = sub.add_parser("memory", help="add, search, list or forget long-term memories")
    mem.add_argument("action", choices=["add", "search", "list", "forget", "reembed"])
    mem.add_argument("text", nargs="?", default="")
    health = sub.add_parser("health", help="JSON snapshot of breakers and health checks")
    tools = sub.add_parser("tools", help="registered tools and their JSON schemas")
    for parser in (chat, conv, mem, health, tools):
        _user_option(parser)


def _json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


async def run_command(
    args: argparse.Namespace, config: Config, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from runtime.host.runtime import Runtime

    # Looked up per call, not bound at import: a caller (or pytest) may have swapped them.
    out = out or sys.stdout
    err = err or sys.stderr
    usage = _usage_error(args)
    if usage:
        err.write(f"holdfast {args.command}: {usage}\n")
        return EXIT_USAGE
    rt = Runtime.from_config(config, user=args.user, start_monitor=False)
    if args.command == "tools":
        _json(
            {
                "tools": [
                    t.to_openai() | {"plugin": t.plugin, "permission": rt.tools.permission(t.name)} for t in rt.tools
                ],
                "plugin_errors": rt.plugin_errors,
            },
            out,
        )
        return EXIT_FAILED if rt.plugin_errors else EXIT_OK
    async with rt:
        try:
            if args.command == "chat":
                return await _chat(rt, args, out, err)
            if args.command == "conversations":
                return await _conversations(rt, args, out)
            if args.command == "memory":
                return await _memory(rt, args, out)
            report = await rt.health()
            _json(report, out)
            return EXIT_OK if report["status"] == "healthy" else EXIT_FAILED
        except AppError as exc:
            err.write(f"holdfast: {exc.user_message()}\n")
            return EXIT_FAILED


def _usage_error(args: argparse.Namespace) -> str:
    """What is wrong with the arguments argparse cannot check, or ""."""
    if args.command == "chat":
        if not args.message.strip():
            return "the message is empty"
        if args.new and args.conversation:
            return "--new and --conversation cannot be used together"
    if args.command == "conversations" and args.action in _NEEDS_ID and not args.id:
        return f"conversations {args.action} needs a conversation id"
    if args.command == "memory" and args.action in ("add", "search", "forget") and not args.text.strip():
        return f"memory {args.action} needs " + ("a memory id" if args.action == "forget" else "some text")
    return ""


async def _chat(rt: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    conv = args.conversation
    if args.new or not conv:
        conv = await rt.agent.new_conversation(" ".join(args.message.split())[:60])

    async def ask(name: str, arguments: dict[str, Any]) -> str:
        return "once" if args.yes else "deny"

    failed = False
    async for event in rt.agent.run_turn(conv, args.message, ask_permission=ask):
        failed = failed or isinstance(event, TurnFailed)
        if args.json:
            _json(event.to_dict(), out)
        elif isinstance(event, TextDelta):
            out.write(clean(event.text))
            out.flush()
        elif isinstance(event, ToolCallStarted):
            err.write(f"[tool {event.name} {json.dumps(event.arguments)}]\n")
        elif isinstance(event, ToolCallFinished):
            err.write(f"[tool {event.name}: {event.status}] {clean(event.output[:200])}\n")
        elif isinstance(event, Degraded):
            err.write(f"[degraded: {clean(event.reason)}]\n")
        elif isinstance(event, AssistantSaved) and event.source != "llm" and event.source != "cache":
            out.write(clean(event.content))
        elif isinstance(event, TurnFailed):
            err.write(f"[turn failed: {clean(event.error)}]\n")
    if not args.json:
        out.write("\n")
        err.write(f"[conversation {conv}]\n")
    await rt.agent.wait_background()
    return EXIT_FAILED if failed else EXIT_OK


async def _conversations(rt: Any, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        for info in await rt.store.list_conversations(rt.user_id):
            _json(info.to_dict(), out)
        return EXIT_OK
    info = await rt.store.get(args.id)
    if info.user_id != rt.user_id:
        raise NotFoundError(f"conversation {args.id} does not exist")
    if args.action == "delete":
        await rt.store.delete(args.id)
        out.write(f"deleted {args.id}\n")
    elif args.action == "show" or args.format != "json":
        text = await rt.store.export_markdown(args.id)
        # Model text never drives the terminal; an export into a file or pipe stays byte-exact.
        out.write(clean(text) if args.action == "show" or out.isatty() else text)
    else:
        out.write(await rt.store.export_json(args.id) + "\n")
    return EXIT_OK


async def _memory(rt: Any, args: argparse.Namespace, out: TextIO) -> int:
    memory = rt.memory
    if memory is None:
        raise NotFoundError("long-term memory is disabled ([memory].enabled = false)")
    if args.action == "add":
        mid = await memory.store_memory(rt.user_id, "", args.text, {"source": "cli"})
        await memory.wait_idle()
        _json({"id": mid, "content": args.text}, out)
    elif args.action == "search":
        recall = await memory.search_memories(args.text, rt.user_id)
        for m in recall.memories:
            _json({"id": m.id, "content": m.content, "score": m.score, "type": m.type}, out)
    elif args.action == "list":
        for m in await memory.list(rt.user_id):
            _json({"id": m.id, "content": m.content, "type": m.type, "created_at": m.created_at}, out)
    elif args.action == "forget":
        if not await memory.forget(rt.user_id, args.text):
            raise NotFoundError(f"no memory {args.text}")
        await memory.wait_idle()
        out.write(f"forgot {args.text}\n")
    else:
        from runtime.memory import reembed

        _json(str(await reembed(memory)), out)
    return EXIT_OK
