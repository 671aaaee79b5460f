"""A real HTTP server that answers chat requests from a script: the shapes of real endpoints the
demo server's profiles do not produce (no ``GET /models``, a reasoning-only reply with no
usage, whatever a test needs), for tests that run the real CLI against a real socket.

``ScriptedLLM(replies)`` serves ``POST /v1/chat/completions`` with the next reply in the list
(the last one repeats); ``GET /v1/models`` answers 404 like a proxy without it. Each reply is
a :class:`Reply`: status, content type and body. Stop it with :meth:`ScriptedLLM.stop` (or use
it as a context manager); the thread never outlives the test.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer: HTTP ``status``, ``content_type`` and the ``body`` bytes."""

    body: bytes
    status: int = 200
    content_type: str = "text/event-stream"


def sse(*chunks: dict[str, Any]) -> Reply:
    """A 200 SSE reply of these chunks, then ``[DONE]``."""
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return Reply(body)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice (or none when ``delta`` and ``finish`` are None)."""
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return {"id": "scripted", "object": "chat.completion.chunk", "model": "scripted", "choices": choices, **extra}


def completion(message: dict[str, Any], finish: str = "stop", usage: dict[str, int] | None = None) -> Reply:
    """A plain ``chat.completion`` JSON reply."""
    body: dict[str, Any] = {
        "id": "scripted",
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return Reply(json.dumps(body).encode(), content_type="application/json")


class ScriptedLLM:
    """Serve ``replies`` on a free loopback port; ``url`` is the OpenAI-style base URL (``.../v1``).

    ``requests`` holds the JSON body of every chat request received, in order.
    """

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def do_GET(self) -> None:
                self._send(Reply(b'{"error": {"message": "Not Found"}}', 404, "application/json"))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(Reply(b'{"error": {"message": "Not Found"}}', 404, "application/json"))
                    return
                script.requests.append(body)
                index = min(len(script.requests), len(script.replies)) - 1
                self._send(script.replies[index])

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-llm", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
