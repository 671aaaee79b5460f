"""An MCP server with the oddities a new user's servers showed, hand-written in raw JSON-RPC over
stdio (the SDK would not let it send them). For the MCP tests that followed the break-test of
issue 20.

Listed tools: ``honest`` (valid), ``dangling_ref`` (a ``$ref`` to a definition that is not
there), ``remote_ref`` (a ``$ref`` to another document, which must never be fetched), ``twice``
(listed twice, with different descriptions), ``loud`` (its description carries Rich markup and
terminal escape sequences), ``server_error`` (answers with JSON-RPC error -32000, the first code
of the "server error" range, which the SDK also uses for a closed connection), ``video``
(answers with a content block of a type MCP does not have), ``null_result`` (a ``null`` result).

With ``--stubborn`` it ignores SIGTERM, SIGHUP and the end of its stdin (it sleeps on), and
starts a grandchild in its process group that does the same: what a launcher (``npx``, ``uvx``)
and a careless server look like to Holdfast. ``--pidfile PATH`` writes the grandchild's pid there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

OBJECT = {"type": "object", "properties": {"x": {"type": "string"}}}
TOOLS: list[dict[str, Any]] = [
    {"name": "honest", "description": "Answers properly.", "inputSchema": OBJECT},
    {
        "name": "dangling_ref",
        "description": "Refers to a definition it does not have.",
        "inputSchema": {"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}},
    },
    {
        "name": "remote_ref",
        "description": "Refers to another document.",
        "inputSchema": {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/schema.json"}}},
    },
    {"name": "twice", "description": "The first definition.", "inputSchema": OBJECT},
    {"name": "twice", "description": "The second definition.", "inputSchema": OBJECT},
    {"name": "loud", "description": "[bold red]Loud[/] \x1b[31mred\x1b[0m\x1b]0;title\x07 tool", "inputSchema": OBJECT},
    {"name": "server_error", "description": "Fails with -32000.", "inputSchema": OBJECT},
    {"name": "video", "description": "Answers with a video block.", "inputSchema": OBJECT},
    {"name": "null_result", "description": "Answers null.", "inputSchema": OBJECT},
]

STUBBORN = "--stubborn" in sys.argv


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def result(rid: object, value: object) -> None:
    send({"jsonrpc": "2.0", "id": rid, "result": value})


def answer(request: dict[str, Any]) -> None:
    method, rid = request.get("method"), request.get("id")
    if rid is None:
        return
    params = request.get("params") or {}
    if method == "initialize":
        result(
            rid,
            {
                "protocolVersion": params.get("protocolVersion"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "oddities", "version": "1"},
            },
        )
    elif method == "tools/list":
        result(rid, {"tools": TOOLS})
    elif method == "ping":
        result(rid, {})
    elif method == "tools/call":
        name, args = params.get("name"), params.get("arguments") or {}
        if name == "server_error":
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "the database is down"}})
        elif name == "video":
            result(rid, {"content": [{"type": "video", "uri": "file:///v.mp4"}]})
        elif name == "null_result":
            result(rid, None)
        else:
            result(rid, {"content": [{"type": "text", "text": f"{name}: {args.get('x', '')} (pid {os.getpid()})"}]})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}})


def main() -> None:
    if STUBBORN:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        grandchild = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(3600)",
            ],
            stdin=subprocess.DEVNULL,
        )
        if "--pidfile" in sys.argv:
            with open(sys.argv[sys.argv.index("--pidfile") + 1], "w", encoding="utf-8") as out:
                out.write(str(grandchild.pid))
    for line in sys.stdin:
        if line.strip():
            answer(json.loads(line))
    while STUBBORN:
        time.sleep(1)


if __name__ == "__main__":
    main()
