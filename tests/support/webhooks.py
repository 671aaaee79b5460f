"""A webhook receiver for alert tests: a real HTTP server on a loopback port (in a thread) that
records every JSON body POSTed to it and answers 204."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every JSON body POSTed to :attr:`url` in :attr:`bodies` (arrival order)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        received = self.bodies
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                with lock:
                    received.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def plain(self) -> list[dict[str, object]]:
        """The plain JSON alert bodies (``{"kind", "key", ...}``), not Slack's ``{"text"}``."""
        return [b for b in list(self.bodies) if "kind" in b]

    def keys(self) -> list[str]:
        """The ``key`` of every plain alert received, in arrival order."""
        return [str(b["key"]) for b in self.plain()]

    def close(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
