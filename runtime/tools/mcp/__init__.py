"""MCP (Model Context Protocol) tool servers, through the official ``mcp`` SDK.

- ``manager``: :class:`McpManager`, every ``[mcp.servers.NAME]`` of a runtime (background start,
  bounded wait, stop with no orphans, statuses).
- ``server``: :class:`McpServer`, one server's connection, restarts with backoff, guarded calls
  (``Guard("mcp:<name>")``), health check and :class:`McpServerStatus`.
- ``stdio``: :class:`StdioServerProcess`, a stdio server as a child process that never outlives
  Holdfast, and its transport.
- ``tools``: :class:`McpTool`, schema checks, names on a clash, permissions.
- ``content``: a tool result as text for the model; :class:`McpToolError`, :class:`McpProtocolError`.
- ``memory_server``: Holdfast's own MCP server (``holdfast mcp serve``): one user's long-term memory.

Importing this package imports the SDK; the runtime does so only when servers are configured.
"""

from __future__ import annotations

from runtime.tools.mcp.content import McpProtocolError, McpToolError
from runtime.tools.mcp.manager import McpManager
from runtime.tools.mcp.server import McpServer, McpServerStatus, McpServerUnavailable
from runtime.tools.mcp.stdio import StdioServerProcess
from runtime.tools.mcp.tools import InvalidToolSchema, McpTool

__all__ = [
    "InvalidToolSchema",
    "McpManager",
    "McpProtocolError",
    "McpServer",
    "McpServerStatus",
    "McpServerUnavailable",
    "McpTool",
    "McpToolError",
    "StdioServerProcess",
]
