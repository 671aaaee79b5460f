"""``X-Request-ID``: accepted from the client or generated, returned on every response, set on
every log record (:data:`runtime.core.logs.request_id_var`) and every SSE event of the request.

:class:`RequestIdMiddleware` is the outermost layer of the app, so it is also where an
exception nothing else handled ends: it answers with the global error handler's typed 500 (with
the id header), never Starlette's bare text 500. A client's id is kept only when it is a short
token of safe characters; anything else (spaces, control characters, 200 characters of junk) is
replaced, so a hostile value never reaches a header or a log line.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.core.logs import request_id_var
from runtime.serve.errors import GlobalErrorHandler

HEADER = "X-Request-ID"
_HEADER_BYTES = HEADER.lower().encode()
_SAFE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    """A fresh id: 32 hex digits (a uuid4)."""
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The client's id when it is 1-128 characters of ``A-Z a-z 0-9 . _ : -``, else a new one."""
    if value and _SAFE.fullmatch(value):
        return value
    return new_request_id()


class RequestIdMiddleware:
    """Pure ASGI middleware (no per-request task, unlike ``BaseHTTPMiddleware``): sets the id,
    adds the header to the response start, and turns an unhandled exception into the error
    handler's 500 when no response has started yet (after that, the connection is closed)."""

    def __init__(self, app: ASGIApp, handler: GlobalErrorHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call (HTTP gets the id; lifespan and others pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == _HEADER_BYTES:
                given = value.decode("latin-1")
                break
        request_id = accept_request_id(given)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = False
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", ()) if k != _HEADER_BYTES]
                headers.append((_HEADER_BYTES, raw_id))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            client = scope.get("client")
            response = self.handler.response(
                exc,
                method=scope.get("method", ""),
                path=scope.get("path", ""),
                headers=headers,
                client=f"{client[0]}:{client[1]}" if client else "",
            )
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
