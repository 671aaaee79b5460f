"""``holdfast keys create|list|revoke --user NAME``: API keys of ``holdfast serve``.

A key is one user: everything a request with it does is scoped to that user. ``create`` prints
the key once (only its SHA-256 is stored, in Redis); ``list`` shows ids, users, creation times and
a hint (the first characters), ``--all`` every user's; ``revoke KEY_ID`` (or the key itself)
deletes it, effective on the next request of every replica. ``--user`` is the global option (default: the configured or OS user). Exit 1 for a
key id that is not the user's, or when Redis is out.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.cli.base import EXIT_OK, with_runtime, write_json

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime
    from runtime.serve.auth import ApiKeys

app = typer.Typer(name="keys", help="API keys of `holdfast serve` (one user per key).", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="JSON output.")]


def _run(ctx: typer.Context, action: Callable[[Runtime, ApiKeys], Awaitable[int]]) -> int:
    """Run ``action`` with the runtime and an :class:`ApiKeys` on the runtime's Redis."""

    async def body(rt: Runtime) -> int:
        from runtime.serve.auth import ApiKeys
        from runtime.state.client import RedisRunner, make_redis_client

        client = make_redis_client(rt.redis_url)
        keys = ApiKeys(RedisRunner(client, rt.resilience.guard("redis")), key_prefix=rt.config.redis.key_prefix)
        try:
            return await action(rt, keys)
        finally:
            await client.aclose()

    return with_runtime(ctx, body, llm=False)


@app.command("create")
def create(ctx: typer.Context, json_: Json = False) -> int:
    """Create a key for the user and print it (shown only this once)."""

    async def action(rt: Runtime, keys: ApiKeys) -> int:
        info, secret = await keys.create(rt.user_id)
        if json_:
            write_json({**info.to_dict(), "key": secret})
        else:
            sys.stdout.write(f"{secret}\n")
            sys.stderr.write(f"[key {info.id} for user {info.user_id}: store it now, it is not shown again]\n")
        return EXIT_OK

    return _run(ctx, action)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    json_: Json = False,
    all_users: Annotated[bool, typer.Option("--all", help="Every user's keys, not only --user's.")] = False,
) -> int:
    """List the user's keys (id, user, creation time, hint); never the keys themselves."""

    async def action(rt: Runtime, keys: ApiKeys) -> int:
        # Without --all a user who created keys for others saw "no API keys" while they existed.
        found = await keys.list(None if all_users else rt.user_id)
        if json_:
            for info in found:
                write_json(info.to_dict())
        elif not found:
            hint = "" if all_users else " (--all lists every user's)"
            sys.stdout.write(f"no API keys{'' if all_users else f' for user {rt.user_id}'}{hint}\n")
        else:
            for info in found:
                created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created_at))
                sys.stdout.write(f"{info.id}  {info.user_id}  {created}  {info.hint}...\n")
        return EXIT_OK

    return _run(ctx, action)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[
        str,
        typer.Argument(metavar="KEY_ID", help="The key's id (from `holdfast keys list`) or the key itself (hf_...)."),
    ],
) -> int:
    """Revoke one of the user's keys: requests with it get 401 from then on."""

    async def action(rt: Runtime, keys: ApiKeys) -> int:
        await keys.revoke(key_id, rt.user_id)
        # A key given as its secret is not echoed back.
        sys.stdout.write(f"revoked {key_id if not key_id.startswith('hf_') else 'the key given'}\n")
        return EXIT_OK

    return _run(ctx, action)


def register(root: typer.Typer) -> None:
    """Add the ``keys`` group to the root command."""
    root.add_typer(app)
