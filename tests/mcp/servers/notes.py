"""A small MCP server written with the official SDK, for the MCP tests: stdio by default,
streamable HTTP on 127.0.0.1 with ``--http PORT`` (path ``/mcp``).

Tools: ``echo`` (text back), ``add`` (two integers), ``slow`` (sleeps: the hanging tool),
``whoami`` (this process's pid: tells a restarted server apart), ``fail`` (an ``isError``
result, as a tool reports a failure it foresaw).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer = MCPServer("notes", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def slow(seconds: float) -> str:
    """Wait that many seconds, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool()
def whoami() -> str:
    """The server process's pid."""
    return f"pid {os.getpid()}"


@server.tool()
def fail() -> str:
    """Always fails, the way a tool reports a failure it foresaw."""
    raise ToolError("the notebook is locked")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
