"""``holdfast memory add TEXT|search QUERY|list|forget ID|reembed``: long-term memories.

Every action is scoped to ``--user``. Output is JSON lines on stdout (one per memory), except
``forget`` which prints ``forgot ID``. Exit 1 when memory is disabled, the id is not the user's,
a memory cannot be stored (not even queued on disk: read-only or full data dir), or ``search``
finds the memory store offline (``holdfast: memory offline: <why>`` on stderr: an empty answer
would read as "nothing remembered").
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, usage_error, with_runtime, write_json
from runtime.core.errors import NotFoundError

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime
    from runtime.memory import VectorMemoryStore

app = typer.Typer(name="memory", help="Add, search, list or forget long-term memories.")


def _store(rt: Runtime) -> VectorMemoryStore:
    if rt.memory is None:
        raise NotFoundError("long-term memory is disabled ([memory].enabled = false)")
    store: VectorMemoryStore = rt.memory
    return store


@app.command("add")
def add(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The fact to remember.", show_default=False)],
) -> int:
    """Remember TEXT; prints the new memory's id and content as one JSON line."""
    if not text.strip():
        usage_error(ctx, "needs some text")

    async def body(rt: Runtime) -> int:
        memory = _store(rt)
        memory_id = await memory.store_memory(rt.user_id, "", text, {"source": "cli"})
        await memory.wait_idle()
        write_json({"id": memory_id, "content": text})
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to recall.", show_default=False)],
) -> int:
    """The user's memories most similar to QUERY, best first, with their scores."""
    if not query.strip():
        usage_error(ctx, "needs some text")

    async def body(rt: Runtime) -> int:
        recall = await _store(rt).search_memories(query, rt.user_id)
        if recall.offline:
            print(f"holdfast: memory offline: {recall.reason}", file=sys.stderr)
            return EXIT_FAILED
        if recall.degraded and recall.reason:
            print(f"holdfast: memory degraded ({recall.source} recall): {recall.reason}", file=sys.stderr)
        for m in recall.memories:
            write_json({"id": m.id, "content": m.content, "score": m.score, "type": m.type})
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("list")
def list_(ctx: typer.Context) -> int:
    """Every memory of the user."""

    async def body(rt: Runtime) -> int:
        for m in await _store(rt).list(rt.user_id):
            write_json({"id": m.id, "content": m.content, "type": m.type, "created_at": m.created_at})
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("forget")
def forget(
    ctx: typer.Context,
    memory_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The memory id (see `list`), or its first 4+ characters.", show_default=False
        ),
    ],
) -> int:
    """Delete one memory of the user, named by its id or a unique prefix of it (at least 4
    characters, as the chat's /forget takes); exit 1 (one line saying why) when no memory of the
    user has it, several do, or a prefix is shorter."""
    if not memory_id.strip():
        usage_error(ctx, "needs a memory id")

    async def body(rt: Runtime) -> int:
        memory = _store(rt)
        wanted = memory_id.strip()
        if not await memory.forget(rt.user_id, wanted):
            wanted = await rt.find_memory(wanted)  # NotFoundError / ValidationError name the prefix
            if not await memory.forget(rt.user_id, wanted):
                raise NotFoundError(f"no memory {memory_id}")
        await memory.wait_idle()
        sys.stdout.write(f"forgot {wanted}\n")
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


@app.command("reembed")
def reembed(ctx: typer.Context) -> int:
    """Re-embed every memory with the configured embedding model (after changing it)."""

    async def body(rt: Runtime) -> int:
        from runtime.memory import reembed as run_reembed

        write_json(str(await run_reembed(_store(rt))))
        return EXIT_OK

    return with_runtime(ctx, body, llm=False)


def register(root: typer.Typer) -> None:
    """Add the ``memory`` group to the root command."""
    root.add_typer(app)
