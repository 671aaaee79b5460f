"""``holdfast tools``: the registered tools, their JSON schemas and plugin load errors.

Runs on an unstarted Runtime: plugins are loaded and the configured MCP servers started (their
tools are listed like built-in ones, then the servers are stopped); no Redis and no LLM is
contacted. Exit 1 when a plugin, an MCP server or one of its tools failed to load (its error is in
``plugin_errors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, with_runtime, write_json

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime


def tools(ctx: typer.Context) -> int:
    """Registered tools and their JSON schemas (OpenAI function format); exit 1 if a plugin failed."""

    async def body(rt: Runtime) -> int:
        try:
            await rt.load_mcp_tools()  # MCP tools are listed like built-in ones
            listed = [t.to_openai() | {"plugin": t.plugin, "permission": rt.tools.permission(t.name)} for t in rt.tools]
            errors = rt.plugin_errors
        finally:
            await rt.stop_mcp()
        write_json({"tools": listed, "plugin_errors": errors})
        return EXIT_FAILED if errors else EXIT_OK

    return with_runtime(ctx, body, start=False)


def register(root: typer.Typer) -> None:
    """Add ``tools`` to the root command."""
    root.command("tools")(tools)
