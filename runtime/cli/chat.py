"""``holdfast chat MESSAGE``: one turn, headless.

The answer goes to stdout; tool calls, degraded notices and the conversation id go to stderr, so
``holdfast chat "..." > answer.txt`` keeps only the answer. ``--json`` writes every turn event as
one JSON line on stdout, each with ``type`` and ``conversation_id``. Exit 1 when the turn failed
(the model gave no answer); a refused or failing tool is not a failure: the model answers it.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, usage_error, with_runtime, write_json
from runtime.core.events import AssistantSaved, Degraded, TextDelta, ToolCallFinished, ToolCallStarted, TurnFailed
from runtime.core.safe_text import clean

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime

#: Characters of a new conversation's title taken from the first message.
TITLE_CHARS = 60
#: Characters of a tool's output echoed on stderr.
TOOL_OUTPUT_CHARS = 200


def chat(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(metavar="MESSAGE", help="The message to send.", show_default=False)],
    conversation: Annotated[
        str | None, typer.Option("--conversation", metavar="ID", help="Continue this conversation.")
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Start a new conversation (the default without --conversation).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the event stream as JSON lines.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help='Allow tools whose permission is "ask" (refused otherwise).')
    ] = False,
) -> int:
    """Send one message and stream the answer."""
    if not message.strip():
        usage_error(ctx, "the message is empty")
    if new and conversation:
        usage_error(ctx, "--new and --conversation cannot be used together")

    async def body(rt: Runtime) -> int:
        return await _turn(rt, message, conversation, as_json=as_json, yes=yes)

    return with_runtime(ctx, body)


async def _turn(rt: Runtime, message: str, conversation: str | None, *, as_json: bool, yes: bool) -> int:
    out, err = sys.stdout, sys.stderr
    conv = conversation or await rt.agent.new_conversation(" ".join(message.split())[:TITLE_CHARS])

    async def ask(name: str, arguments: dict[str, Any]) -> str:
        return "once" if yes else "deny"

    failed = False
    async for event in rt.agent.run_turn(conv, message, ask_permission=ask):
        failed = failed or isinstance(event, TurnFailed)
        if as_json:
            write_json(event.to_dict())
        elif isinstance(event, TextDelta):
            out.write(clean(event.text))
            out.flush()
        elif isinstance(event, ToolCallStarted):
            err.write(f"[tool {event.name} {json.dumps(event.arguments)}]\n")
        elif isinstance(event, ToolCallFinished):
            err.write(f"[tool {event.name}: {event.status}] {clean(event.output[:TOOL_OUTPUT_CHARS])}\n")
        elif isinstance(event, Degraded):
            err.write(f"[degraded: {clean(event.reason)}]\n")
        elif isinstance(event, AssistantSaved) and event.source not in ("llm", "cache"):
            # A degraded notice or fallback answer was not streamed: print it whole.
            out.write(clean(event.content))
        elif isinstance(event, TurnFailed):
            err.write(f"[turn failed: {clean(event.error)}]\n")
    if not as_json:
        out.write("\n")
        err.write(f"[conversation {conv}]\n")
    await rt.agent.wait_background()
    return EXIT_FAILED if failed else EXIT_OK


def register(root: typer.Typer) -> None:
    """Add ``chat`` to the root command."""
    root.command("chat")(chat)
