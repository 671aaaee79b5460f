"""An MCP server that lies, hand-written in raw JSON-RPC over stdio (no SDK: the SDK would not
let it break the protocol). For the MCP tests of invalid schemas and malformed replies.

Listed tools: ``honest`` (valid), ``bad_schema`` (a property of type "bogus": not a JSON
Schema), ``not_object`` (a root type other than "object"), ``garbled`` (answers with content that
is not a list), ``broken_envelope`` (answers with a line that is JSON with its request's id but
not JSON-RPC), ``chatty`` (writes a line of plain text to stdout before a valid answer).
"""

from __future__ import annotations

import json
import sys
from typing import Any

OBJECT = {"type": "object", "properties": {"x": {"type": "string"}}}
TOOLS = [
    {"name": "honest", "description": "Answers properly.", "inputSchema": OBJECT},
    {
        "name": "bad_schema",
        "description": "Its schema is invalid.",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "bogus"}}},
    },
    {"name": "not_object", "description": "Its schema is not an object.", "inputSchema": {"type": "string"}},
    {"name": "garbled", "description": "Answers with malformed content.", "inputSchema": OBJECT},
    {"name": "broken_envelope", "description": "Answers with a broken envelope.", "inputSchema": OBJECT},
    {"name": "chatty", "description": "Prints noise before answering.", "inputSchema": OBJECT},
]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, Any]) -> None:
    method, rid = request.get("method"), request.get("id")
    if rid is None:  # a notification
        return
    params = request.get("params") or {}
    if method == "initialize":
        send(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "result": {
                    "protocolVersion": params.get("protocolVersion"),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "liar", "version": "1"},
                },
            }
        )
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name, args = params.get("name"), params.get("arguments") or {}
        if name == "garbled":
            send({"jsonrpc": "2.0", "id": rid, "result": {"content": "this is not a list of blocks"}})
        elif name == "broken_envelope":
            send({"jsonrpc": "1.0", "id": rid, "whatever": True})
        else:
            if name == "chatty":
                sys.stdout.write("DEBUG: about to answer\n")
            send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "result": {"content": [{"type": "text", "text": f"{name}: {args.get('x', '')}"}]},
                }
            )
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}})


if __name__ == "__main__":
    for line in sys.stdin:
        if line.strip():
            answer(json.loads(line))
