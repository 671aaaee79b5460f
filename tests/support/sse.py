"""Building OpenAI chat-completion streams by hand, for respx-mocked endpoints that send the
shapes real servers send (quirks included): a ``calculator`` tool definition, one chunk, and a
Server-Sent Events body or response ending with ``data: [DONE]``."""

from __future__ import annotations

import json
from typing import Any

import httpx

#: The tool definition the quirk tests offer the model (OpenAI's ``tools`` shape).
CALC = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate arithmetic",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with choice 0's ``delta`` and ``finish_reason``; no choice at
    all when both are None (a usage-only chunk); ``extra`` keys go in the chunk as they are."""
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": choices, **extra}


def sse(*chunks: dict[str, Any]) -> bytes:
    """The SSE body of ``chunks``, each as a ``data:`` event, then ``data: [DONE]``."""
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def sse_response(*chunks: dict[str, Any]) -> httpx.Response:
    """A 200 ``text/event-stream`` response carrying :func:`sse` of ``chunks``."""
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse(*chunks))
