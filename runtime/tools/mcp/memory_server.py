"""Holdfast as an MCP server (``holdfast mcp serve``): one user's long-term memory for other agents.

Three tools, all scoped to the one user the server was started for (``--user``; no tool takes
a user, so a client cannot reach anyone else's memories):

* ``search_memories(query, limit)``: the user's memories closest to ``query``, best first, each
  with its id, content, cosine score and type; ``degraded`` and ``reason`` say when recall ran
  on the lexical fallback or found memory offline (MCP result ``structuredContent``);
* ``add_memory(text)``: remember a fact; returns its id (queued, never lost, while memory is down);
* ``forget_memory(memory_id)``: delete one of the user's memories; an unknown id is a tool error.

Errors the caller can act on (an empty text, an unknown id, a validation failure) are MCP tool
errors (``isError``) with a one-line message, never protocol errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import mcp_types
from mcp.server import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from runtime.core.errors import AppError

if TYPE_CHECKING:
    from runtime.memory.store import VectorMemoryStore

SERVER_NAME = "holdfast-memory"


class _OneLineErrors(MCPServer):
    """The SDK's server, with arguments that fail validation reported in one line naming each
    field and what is wrong (``invalid arguments for search_memories: limit: Input should be
    greater than or equal to 1``) instead of pydantic's multi-line text and its help URL."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult:
        """Call the tool ``name`` (see :meth:`MCPServer.call_tool`); same errors, one line each."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, PydanticValidationError):
                raise
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}" for error in cause.errors()
            )
            raise ToolError(f"invalid arguments for {name}: {problems}") from cause


def memory_server(memory: VectorMemoryStore, user_id: str) -> MCPServer:
    """An MCP server exposing ``user_id``'s memories in ``memory`` (see the module docstring).

    Run it with ``await server.run_stdio_async()``; the caller owns ``memory`` (and closes it).
    """
    server: MCPServer = _OneLineErrors(
        SERVER_NAME,
        instructions=f"Long-term memory of the Holdfast user {user_id}: search it before asking them again.",
        log_level="WARNING",
    )

    @server.tool()
    async def search_memories(
        query: Annotated[str, Field(description="What to recall, in words.")],
        limit: Annotated[int, Field(ge=1, le=50, description="Most memories to return.")] = 5,
    ) -> dict[str, Any]:
        """Search the user's long-term memories; best matches first, with their ids."""
        recall = await memory.search_memories(query, user_id, limit=limit)
        return {
            "memories": [{"id": m.id, "content": m.content, "score": m.score, "type": m.type} for m in recall.memories],
            "degraded": recall.degraded,
            "reason": recall.reason,
        }

    @server.tool()
    async def add_memory(text: Annotated[str, Field(description="The fact to remember, one sentence.")]) -> str:
        """Remember a fact about the user for later conversations; returns the memory's id."""
        try:
            return await memory.store_memory(user_id, "", text, {"source": "mcp"})
        except AppError as exc:
            raise ToolError(exc.user_message()) from exc

    @server.tool()
    async def forget_memory(memory_id: Annotated[str, Field(description="The id search_memories gave.")]) -> str:
        """Delete one of the user's memories by id."""
        try:
            found = await memory.forget(user_id, memory_id)
        except AppError as exc:
            raise ToolError(exc.user_message()) from exc
        if not found:
            raise ToolError(f"no memory {memory_id}")
        return f"forgot {memory_id}"

    return server
