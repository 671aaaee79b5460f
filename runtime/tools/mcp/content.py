"""What an MCP tool result becomes for the model: text, or an error the model reads.

An MCP ``CallToolResult`` (MCP spec, server/tools, "Tool Result") holds content blocks (text,
image, audio, resource links, embedded resources), optional ``structuredContent`` and
``isError``. The model gets one text: text blocks as they are, other blocks as a one-line
placeholder naming what was there (a chat-completions tool message carries text only), and the
structured content as JSON when no block carries text. ``isError`` makes it a
:class:`McpToolError`: the tool ran and reported a failure, which the model reads and the
server's breaker does not count (the server is healthy; the call was not).
"""

from __future__ import annotations

import base64
import binascii
import json

import mcp_types

from runtime.core.errors import AppError, ErrorType, ExternalServiceError


class McpToolError(AppError):
    """The tool ran and answered ``isError: true``; the message is its own text, for the model.

    Typed like a caller error so neither ``mcp:<server>`` nor ``tool:<name>`` breaker counts it:
    an MCP tool reports bad input and business failures this way, and a model that keeps sending
    bad input must not take the tool away from everyone.
    """

    default_type = ErrorType.VALIDATION
    default_status = 422


class McpProtocolError(ExternalServiceError):
    """The server broke the protocol: a malformed reply, a result that does not match the MCP
    schema or the tool's declared output schema. Counted by the server's breaker (a server that
    lies is not healthy); never retried."""

    default_retryable = False


def result_text(result: mcp_types.CallToolResult) -> str:
    """The text the model gets for a successful ``result`` (empty when it carried nothing)."""
    parts = [block_text(block) for block in result.content]
    has_text = any(isinstance(block, mcp_types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        parts.insert(0, json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(p for p in parts if p)


def block_text(block: mcp_types.ContentBlock) -> str:
    """One content block as text: text as is, anything else a bracketed one-line placeholder."""
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, (mcp_types.ImageContent, mcp_types.AudioContent)):
        kind = "image" if isinstance(block, mcp_types.ImageContent) else "audio"
        return f"[{kind} {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource {block.name}: {block.uri}]"
    if isinstance(block, mcp_types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return resource.text
        return f"[resource {resource.uri}: {resource.mime_type or 'binary'}, {_decoded_size(resource.blob)} bytes]"
    return f"[{getattr(block, 'type', 'unknown')} content]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)
