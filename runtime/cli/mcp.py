"""``holdfast mcp list|add|serve``: MCP tool servers, and Holdfast as one.

- ``list``: start every configured server (nothing else: no Redis, no LLM), wait for each one's
  first start (``[mcp].start_timeout``), print its state and tools, stop them all. ``--json``: one
  JSON line per server. Exit 1 when an enabled server is not running or a tool was skipped.
- ``add NAME -- COMMAND ARGS...`` (``--env KEY=VALUE``) or ``add NAME --url URL`` (``--header
  KEY=VALUE``): append ``[mcp.servers.NAME]`` to the user config file
  (``~/.config/holdfast/config.toml``), keeping what it holds. Exit 1 when the name is taken or
  the file cannot be written; 2 for an invalid entry (a bad name, permission or URL, ``--env``
  with ``--url``, ``--header`` with a command).
- ``doctor_report``: ``holdfast doctor``'s ``mcp`` row (each server started, checked, stopped).
- ``serve``: Holdfast's MCP server on stdin/stdout: the long-term memory of ``--user`` (search,
  add, forget; :mod:`runtime.tools.mcp.memory_server`). Only the memory store is opened. Nothing
  but the protocol is written to stdout; logs go to the log file.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, failed, usage_error, user_text, with_runtime, write_json
from runtime.config import Config, McpConfig, user_config_path
from runtime.config.paths import storage_error
from runtime.core.errors import ValidationError, describe
from runtime.core.safe_text import clean

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime
    from runtime.tools.mcp import McpServerStatus

app = typer.Typer(name="mcp", help="MCP tool servers: list them, add one, or serve Holdfast's memory over MCP.")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per server.")] = False,
) -> int:
    """Start each configured MCP server, show its state and tools, stop them."""

    async def body(rt: Runtime) -> int:
        if not rt.config.mcp.servers:
            print("no MCP servers configured: add one with `holdfast mcp add NAME -- COMMAND ARGS...`")
            return EXIT_OK
        from runtime.tools.mcp import McpManager

        manager = McpManager(rt.config.mcp, rt.tools, rt.resilience, log_dir=rt.config.data_path / "mcp")
        manager.start()
        try:
            await manager.wait_ready()
            statuses = manager.statuses()
            for status in statuses:
                if as_json:
                    write_json(status.to_dict() | {"tools": _tool_rows(rt, status)})
                else:
                    _print_status(rt, status)
        finally:
            await manager.stop()
        broken = [s for s in statuses if (s.state not in ("running", "disabled")) or s.skipped]
        return EXIT_FAILED if broken else EXIT_OK

    return with_runtime(ctx, body, start=False)


async def doctor_report(config: Config) -> tuple[Literal["ok", "warn", "fail"], str]:
    """``holdfast doctor``'s ``mcp`` row: start every configured server alone (as ``list`` does),
    wait for each one's first start, stop them, and return (verdict, one-line detail): ``fail``
    naming each enabled server that is not running and why, ``warn`` when a server skipped tools
    (invalid schemas), else ``ok`` with how many servers run and their tools. Never raises."""
    if not config.mcp.servers:
        return "ok", "no servers configured ([mcp.servers])"
    from runtime.resilience import Resilience
    from runtime.tools import ToolRegistry
    from runtime.tools.mcp import McpManager

    manager = McpManager(
        config.mcp, ToolRegistry(config.plugins), Resilience(config.resilience), log_dir=config.data_path / "mcp"
    )
    try:
        manager.start()
        try:
            await manager.wait_ready()
            statuses = manager.statuses()
        finally:
            await manager.stop()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as a row, never a traceback
        return "fail", clean(describe(exc))
    enabled = [s for s in statuses if s.state != "disabled"]
    running = [s for s in enabled if s.state == "running"]
    parts = [f"{len(running)} of {len(enabled)} servers running, {sum(len(s.tools) for s in running)} tools"]
    down = [s for s in enabled if s.state != "running"]
    parts += [f"{s.name}: {s.last_error or s.state}" for s in down]
    skipped = [f"{s.name}/{tool}" for s in enabled for tool in sorted(s.skipped)]
    if skipped:
        parts.append(f"skipped: {', '.join(skipped)} (holdfast mcp list says why)")
    verdict: Literal["ok", "warn", "fail"] = "fail" if down else "warn" if skipped else "ok"
    return verdict, clean("; ".join(parts))


def _tool_rows(rt: Runtime, status: McpServerStatus) -> list[dict[str, str]]:
    rows = []
    for remote, name in sorted(status.tools.items()):
        found = rt.tools.get(name)
        rows.append(
            {
                "name": name,
                "server_name": remote,
                "permission": rt.tools.permission(name),
                "description": found.description if found is not None else "",
            }
        )
    return rows


def _print_status(rt: Runtime, status: McpServerStatus) -> None:
    """The server's lines; everything the server wrote (tool names, descriptions, errors) is
    printed as plain text (:func:`~runtime.core.safe_text.clean`): no terminal control from it."""
    pid = f" pid {status.pid}" if status.pid else ""
    print(f"{status.name}: {status.state} ({clean(status.transport)}: {clean(status.target)}){pid}")
    if status.last_error and status.state != "running":
        print(f"  error: {clean(status.last_error)}")
    for row in _tool_rows(rt, status):
        alias = f" (the server's {clean(row['server_name'])})" if row["server_name"] != row["name"] else ""
        print(f"  {row['name']}{alias} [{row['permission']}] {clean(row['description'])}")
    for tool, why in sorted(status.skipped.items()):
        print(f"  ✖ {clean(tool)} skipped: {clean(why)}")


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The server's name (its tools' prefix on a clash).")],
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="-- COMMAND [ARGS]...", help="How to start a stdio server.", show_default=False),
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="A streamable HTTP server's URL instead.")] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", metavar="KEY=VALUE", help="An environment variable of a stdio server (repeatable)."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", metavar="KEY=VALUE", help="An HTTP header for a --url server (repeatable)."),
    ] = None,
    permission: Annotated[
        str, typer.Option("--permission", help="allow, ask or deny: for every tool of the server.")
    ] = "ask",
) -> int:
    """Add an MCP server to the user config: `holdfast mcp add time -- mcp-server-time`."""
    if bool(command) == bool(url):
        usage_error(ctx, "give either -- COMMAND [ARGS]... (a stdio server) or --url URL")
    if url and env:
        usage_error(ctx, "--env is for a stdio server (-- COMMAND); a --url server takes --header KEY=VALUE")
    if command and header:
        usage_error(ctx, "--header is for a --url server; a stdio server takes --env KEY=VALUE")
    if url:
        problem = _url_problem(url)
        if problem:
            usage_error(ctx, f"--url {url!r} {problem}")
    entry: dict[str, object] = {"url": url} if url else {"command": command[0], "args": command[1:]}  # type: ignore[index]
    for option, values, key in (("--env", env, "env"), ("--header", header, "headers")):
        pairs = [item.partition("=") for item in values or ()]
        if any(not sep or not name.strip() for name, sep, _ in pairs):
            usage_error(ctx, f"{option} takes KEY=VALUE")
        if pairs:
            entry[key] = {name.strip(): value for name, _, value in pairs}
    entry["permission"] = permission
    try:
        McpConfig.model_validate({"servers": {name: entry}})
    except ValueError as exc:  # pydantic's ValidationError: one line, the first problem
        usage_error(ctx, _first_problem(exc))
    written = _append_server(user_config_path(), name, entry)
    print(f"added MCP server {name} to {written}")
    return EXIT_OK


def _url_problem(url: str) -> str:
    """What is wrong with a streamable HTTP server's URL ("" when nothing): it needs http or
    https and a host."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL (a streamable HTTP MCP server's, e.g. http://127.0.0.1:8000/mcp)"
    if not parsed.hostname:
        return "has no host (e.g. http://127.0.0.1:8000/mcp)"
    return ""


def _first_problem(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        message = user_text(str(first.get("msg", exc)))
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{message}" if message.startswith("[") else f"{where}: {message}"
    return str(exc)


def _append_server(path: Path, name: str, entry: dict[str, object]) -> Path:
    """Append ``[mcp.servers.NAME]`` with ``entry`` to the TOML file at ``path`` (created if
    missing), after checking the result still parses and the name is free. Exits 1 (one line)
    when it is taken, the file is not valid TOML, or it cannot be written."""
    try:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
    except OSError as exc:
        failed(storage_error(exc, "read the user config", path))
    try:
        existing = tomllib.loads(current)
    except tomllib.TOMLDecodeError as exc:
        failed(ValidationError(f"{path}: not valid TOML ({exc}); fix it before adding a server"))
    if name in existing.get("mcp", {}).get("servers", {}):
        failed(ValidationError(f"{path} already has [mcp.servers.{name}]; edit or remove it first"))
    lines = [f"[mcp.servers.{name}]"] + [f"{key} = {_toml(value)}" for key, value in entry.items()]
    text = (current.rstrip("\n") + "\n\n" if current.strip() else "") + "\n".join(lines) + "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        failed(ValidationError(f"{path}: adding [mcp.servers.{name}] would not be valid TOML ({exc})"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        failed(storage_error(exc, "write the user config", path))
    return path


def _toml(value: object) -> str:
    """A TOML value for a string, a list of strings or a table of strings (JSON's escapes are TOML's)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {json.dumps(str(v))}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
    return json.dumps(str(value))


@app.command("serve")
def serve(ctx: typer.Context) -> int:
    """Serve --user's long-term memory over MCP (search, add, forget) on stdin/stdout."""

    async def body(rt: Runtime) -> int:
        from runtime.memory import VectorMemoryStore
        from runtime.tools.mcp.memory_server import memory_server

        if not rt.config.memory.enabled:
            print("holdfast: long-term memory is disabled ([memory].enabled = false)", file=sys.stderr)
            return EXIT_FAILED
        memory = VectorMemoryStore.from_config(rt.config, rt.resilience, bus=rt.bus)
        memory.default_user = rt.user_id
        try:
            await memory_server(memory, rt.user_id).run_stdio_async()
        finally:
            await memory.aclose()
        return EXIT_OK

    return with_runtime(ctx, body, start=False)


def register(root: typer.Typer) -> None:
    """Add the ``mcp`` group to the root command."""
    root.add_typer(app)
