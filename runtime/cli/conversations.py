"""``holdfast conversations list|show ID|export ID [--format md|json]|delete ID``.

Every action is scoped to ``--user``: another user's conversation id answers "does not exist"
(exit 1), exactly like an unknown one, so ids cannot be probed across users.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.cli.base import EXIT_OK, with_runtime, write_json
from runtime.core.errors import NotFoundError
from runtime.core.safe_text import clean

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime

app = typer.Typer(name="conversations", help="List, show, export or delete conversations.")

ConversationId = Annotated[
    str, typer.Argument(metavar="ID", help="The conversation id (see `list`).", show_default=False)
]


class ExportFormat(StrEnum):
    """``export --format``: Markdown (``markdown`` or ``md``) or the JSON document."""

    MARKDOWN = "markdown"
    MD = "md"
    JSON = "json"


@app.command("list")
def list_(ctx: typer.Context) -> int:
    """One JSON line per conversation of the user."""

    async def body(rt: Runtime) -> int:
        for info in await rt.store.list_conversations(rt.user_id):
            write_json(info.to_dict())
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("show")
def show(ctx: typer.Context, conversation_id: ConversationId) -> int:
    """Print a conversation as Markdown (terminal escapes removed): interrupted, cut-off, fallback,
    cached and replaced replies marked, a code fence a partial reply left open closed."""

    async def body(rt: Runtime) -> int:
        await _owned(rt, conversation_id)
        sys.stdout.write(clean(await rt.store.export_markdown(conversation_id)))
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("export")
def export(
    ctx: typer.Context,
    conversation_id: ConversationId,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", case_sensitive=False, help="Markdown or the JSON document.")
    ] = ExportFormat.MARKDOWN,
) -> int:
    """Write a conversation to stdout, byte-exact when redirected to a file or pipe."""

    async def body(rt: Runtime) -> int:
        await _owned(rt, conversation_id)
        if fmt is ExportFormat.JSON:
            sys.stdout.write(await rt.store.export_json(conversation_id) + "\n")
        else:
            text = await rt.store.export_markdown(conversation_id)
            # Model text never drives the terminal; an export into a file or pipe stays byte-exact.
            sys.stdout.write(clean(text) if sys.stdout.isatty() else text)
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("delete")
def delete(ctx: typer.Context, conversation_id: ConversationId) -> int:
    """Delete a conversation and its messages."""

    async def body(rt: Runtime) -> int:
        await _owned(rt, conversation_id)
        await rt.store.delete(conversation_id)
        sys.stdout.write(f"deleted {conversation_id}\n")
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


async def _owned(rt: Runtime, conversation_id: str) -> None:
    """Raise :class:`NotFoundError` unless the conversation exists and belongs to the user."""
    info = await rt.store.get(conversation_id)
    if info.user_id != rt.user_id:
        raise NotFoundError(f"conversation {conversation_id} does not exist")


def register(root: typer.Typer) -> None:
    """Add the ``conversations`` group to the root command."""
    root.add_typer(app)
