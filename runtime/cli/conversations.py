"""``holdfast conversations list|show ID|export ID [--format md|json]|delete ID|branch ID --at SEQ``.

``list`` prints each conversation with its totals (tokens and cost of its replies, issue 17).

Every action is scoped to ``--user``: another user's conversation id answers "does not exist"
(exit 1), exactly like an unknown one, so ids cannot be probed across users.

A branch (issue 17) is listed right after its parent (``parent_id`` and ``fork_seq`` say where it
forked); ``show`` prints its shared messages and marks the branch point.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.cli.base import EXIT_OK, EXIT_USAGE, with_runtime, write_json
from runtime.core.errors import NotFoundError, ValidationError
from runtime.core.safe_text import clean

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime
    from runtime.state.history import ConversationInfo

app = typer.Typer(name="conversations", help="List, show, export, branch or delete conversations.")


def _well_formed(value: str) -> str:
    """A conversation id as typed, if it could be one; a malformed one (empty, a space, over 128
    characters) is a usage error (exit 2, Click's one line), not an id that "does not exist"."""
    from runtime.state.codec import check_id

    try:
        return check_id(value, "ID")
    except ValidationError as exc:
        raise typer.BadParameter(exc.user_message().removeprefix("ID ")) from None


ConversationId = Annotated[
    str,
    typer.Argument(metavar="ID", help="The conversation id (see `list`).", show_default=False, callback=_well_formed),
]


class ExportFormat(StrEnum):
    """``export --format``: Markdown (``markdown`` or ``md``) or the JSON document."""

    MARKDOWN = "markdown"
    MD = "md"
    JSON = "json"


@app.command("list")
def list_(
    ctx: typer.Context,
    json_: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON lines (what `list` always prints; accepted like the other commands' --json)."
        ),
    ] = False,
) -> int:
    """One JSON line per conversation of the user, most recent first; each branch right after its
    parent (its ``parent_id`` and ``fork_seq`` say where it forked; both null for the others).
    Each line has its ``totals``: replies with figures, prompt and completion tokens, and
    ``cost`` (null without a price in ``[pricing]``), summed over the replies it holds itself
    (a branch's shared messages count for its parent)."""

    async def body(rt: Runtime) -> int:
        from runtime.host.facade import Conversation

        infos = branches_under_parents(await rt.store.list_conversations(rt.user_id))
        listed = [
            Conversation(
                id=i.id,
                title=i.title,
                created_at=i.created_at,
                updated_at=i.updated_at,
                message_count=i.message_count,
            )
            for i in infos
        ]
        totals = await rt.conversation_totals(listed)
        for info in infos:
            found = totals.get(info.id)
            write_json({**info.to_dict(), "totals": found.to_dict() if found is not None else None})
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


@app.command("branch")
def branch(
    ctx: typer.Context,
    conversation_id: ConversationId,
    at: Annotated[
        int,
        typer.Option(
            "--at",
            metavar="SEQ",
            help="The last message the branch shares (its #N in `show`; -1: none).",
            show_default=False,
        ),
    ],
    title: Annotated[str | None, typer.Option("--title", help="The branch's title (default: the parent's).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the branch as one JSON object.")] = False,
) -> int:
    """Start a branch of a conversation after message SEQ and print its id.

    The branch shares messages 0..SEQ with its parent (stored once, not copied); `holdfast chat --conversation BRANCH_ID` continues it. A SEQ out of range exits 2.
    """

    async def body(rt: Runtime) -> int:
        await _owned(rt, conversation_id)
        try:
            new_id = await rt.store.branch(conversation_id, at, user_id=rt.user_id, title=title)
        except ValidationError as exc:
            print(f"holdfast: {exc.user_message()}", file=sys.stderr)
            return EXIT_USAGE
        if json_:
            write_json((await rt.store.get(new_id)).to_dict())
        else:
            sys.stdout.write(new_id + "\n")
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("delete")
def delete(ctx: typer.Context, conversation_id: ConversationId) -> int:
    """Delete a conversation and its messages (a parent's messages its branches share stay until
    its last branch is deleted)."""

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


def branches_under_parents(infos: list[ConversationInfo]) -> list[ConversationInfo]:
    """``infos`` (most recent first) with each branch moved right after its parent, branches of
    one parent in fork order; a branch whose parent is not listed (deleted) keeps its place."""
    listed = {info.id for info in infos}
    children: dict[str, list[ConversationInfo]] = {}
    for info in infos:
        if info.parent_id in listed:
            children.setdefault(info.parent_id, []).append(info)
    out: list[ConversationInfo] = []

    def add(info: ConversationInfo) -> None:
        out.append(info)
        for child in sorted(children.get(info.id, []), key=lambda c: (c.fork_seq or 0, c.created_at)):
            add(child)

    for info in infos:
        if info.parent_id not in listed:
            add(info)
    return out


def register(root: typer.Typer) -> None:
    """Add the ``conversations`` group to the root command."""
    root.add_typer(app)
