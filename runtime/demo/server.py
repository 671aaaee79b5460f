"""The offline demo/chaos LLM server: an OpenAI-compatible HTTP API on loopback.

Endpoints: ``POST /v1/chat/completions`` (SSE streaming and plain JSON, tool calls, usage),
``GET /v1/models``, ``POST /v1/embeddings`` (float or base64), and ``GET/POST /admin/faults``
(loopback clients only) to inspect and change the injected faults at run time.

Run it with ``python -m runtime.demo.server --host 127.0.0.1 --port N [fault flags]``;
:func:`run_cli` is the same entry point for ``holdfast demo-llm``. The replies come from
:mod:`runtime.demo.model` and are streamed word by word at ``--tokens-per-second``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import itertools
import json
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime.core.errors import ValidationError
from runtime.demo import model as demo_model
from runtime.demo.faults import Faults, FaultState

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ABORT_KEY = "holdfast.abort"


@dataclass
class DemoServerState:
    """Everything one server instance keeps: pacing, faults and what it has seen."""

    tokens_per_second: float = 200.0
    faults: FaultState = field(default_factory=FaultState)
    streams_completed: int = 0
    streams_cancelled: int = 0
    streams_dropped: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> str:
        return f"chatcmpl-demo-{next(self._ids)}"

    def snapshot(self) -> dict[str, Any]:
        data = self.faults.snapshot()
        data.update(
            streams_completed=self.streams_completed,
            streams_cancelled=self.streams_cancelled,
            streams_dropped=self.streams_dropped,
            tokens_per_second=self.tokens_per_second,
            pid=os.getpid(),
        )
        return data


# ---------------------------------------------------------------- helpers


def _error(
    status: int, message: str, err_type: str, *, headers: dict[str, str] | None = None, code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _abort(scope: Scope) -> None:
    """Drop the TCP connection without a response (the client sees a connection error)."""
    abort = scope.get(_ABORT_KEY)
    if abort is not None:
        abort()
    # Let the transport's connection_lost run so the server does not try to answer.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _apply_faults(request: Request, state: DemoServerState) -> Response | None:
    """Apply the request-level faults; None means go on and answer normally."""
    action = state.faults.decide()
    faults = state.faults.faults
    if action == "down":
        await _abort(request.scope)
        return Response(status_code=503)  # only reached when the transport could not be aborted
    if faults.latency > 0:
        await asyncio.sleep(faults.latency)
    if action == "hang":
        await _wait_for_disconnect(request.receive)
        return Response(status_code=504)
    if action == "rate_limit":
        return _error(
            429,
            "demo: rate limit injected",
            "requests",
            code="rate_limit_exceeded",
            headers={"retry-after": f"{faults.retry_after:g}"},
        )
    if action == "error":
        return _error(faults.error_status, f"demo: injected error {faults.error_status}", "server_error")
    return None


def _chunk(
    state_id: str, created: int, delta: dict[str, Any], finish: str | None, include_usage: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": state_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": demo_model.MODEL_NAME,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        data["usage"] = None
    return data


def _usage(reply: demo_model.DemoReply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _tool_args(call: demo_model.DemoToolCall, broken: bool) -> str:
    return call.arguments[:-1] + ',"' if broken else call.arguments


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


# ---------------------------------------------------------------- streaming


_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class _ChatStream:
    """An SSE response that paces its tokens and can be cut, like a flaky real endpoint."""

    def __init__(self, state: DemoServerState, reply: demo_model.DemoReply, include_usage: bool) -> None:
        self.state = state
        self.reply = reply
        self.include_usage = include_usage

    def _events(self) -> list[tuple[bytes, bool]]:
        """(SSE bytes, counts as a token) in order, ending with [DONE]."""
        faults = self.state.faults.faults
        cid, created, usage = self.state.next_id(), int(time.time()), self.include_usage
        out: list[tuple[bytes, bool]] = []
        if faults.malformed:
            out.append((b'data: {"id": "' + cid.encode() + b'", "choices": [{"delta": {"content"\n\n', False))
        out.append((_sse(_chunk(cid, created, {"role": "assistant", "content": ""}, None, usage)), False))
        if self.reply.tool_calls:
            for index, call in enumerate(self.reply.tool_calls):
                head = {
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                out.append((_sse(_chunk(cid, created, {"tool_calls": [head]}, None, usage)), True))
                args = _tool_args(call, faults.malformed_tool_args)
                # Arguments arrive in small fragments, as real endpoints send them.
                for start in range(0, len(args), 8):
                    piece = {"index": index, "function": {"arguments": args[start : start + 8]}}
                    out.append((_sse(_chunk(cid, created, {"tool_calls": [piece]}, None, usage)), True))
        else:
            for word in demo_model.split_words(self.reply.text or ""):
                out.append((_sse(_chunk(cid, created, {"content": word}, None, usage)), True))
        out.append((_sse(_chunk(cid, created, {}, self.reply.finish_reason, usage)), False))
        if usage:
            final = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": demo_model.MODEL_NAME,
                "system_fingerprint": None,
                "choices": [],
                "usage": _usage(self.reply),
            }
            out.append((_sse(final), False))
        out.append((b"data: [DONE]\n\n", False))
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = asyncio.Event()

        async def watch() -> None:
            await _wait_for_disconnect(receive)
            disconnected.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._stream(scope, send, disconnected)
        finally:
            watcher.cancel()

    async def _stream(self, scope: Scope, send: Send, disconnected: asyncio.Event) -> None:
        state = self.state
        drop_after = state.faults.faults.drop_after_tokens
        tps = state.tokens_per_second
        interval = 1.0 / tps if tps > 0 else 0.0
        loop = asyncio.get_running_loop()
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        start = loop.time()
        tokens = 0
        for payload, is_token in self._events():
            if disconnected.is_set():
                state.streams_cancelled += 1
                return
            if is_token:
                if 0 <= drop_after <= tokens:
                    state.streams_dropped += 1
                    await _abort(scope)
                    return
                # Pace against the start time so the rate does not drift with send() costs.
                wait = start + tokens * interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                tokens += 1
            await send({"type": "http.response.body", "body": payload, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        state.streams_completed += 1


# ---------------------------------------------------------------- endpoints


def _completion_body(state: DemoServerState, reply: demo_model.DemoReply) -> dict[str, Any]:
    broken = state.faults.faults.malformed_tool_args
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _tool_args(c, broken)}}
            for c in reply.tool_calls
        ]
    return {
        "id": state.next_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": demo_model.MODEL_NAME,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": _usage(reply),
    }


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "request body is not valid JSON", "invalid_request_error")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object", "invalid_request_error")
    return body


def build_app(state: DemoServerState) -> ASGIApp:
    """The ASGI app for one server; ``state`` is shared with the caller (tests read it)."""

    async def chat_completions(request: Request) -> Response | _ChatStream:
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(400, "'messages' must be a list of message objects", "invalid_request_error")
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            return _error(400, "'tools' must be a list", "invalid_request_error")
        injected = await _apply_faults(request, state)
        if injected is not None:
            return injected
        reply = demo_model.respond(messages, tools, unknown_tool=state.faults.faults.unknown_tool)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return _ChatStream(state, reply, include_usage)
        if state.faults.faults.malformed:
            return Response(b'{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        return JSONResponse(_completion_body(state, reply))

    async def models(request: Request) -> Response:
        injected = await _apply_faults(request, state)
        if injected is not None:
            return injected
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "holdfast"}
            for name in (demo_model.MODEL_NAME, demo_model.EMBED_MODEL_NAME)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def embeddings(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "'input' must be a string or a non-empty list of strings", "invalid_request_error")
        injected = await _apply_faults(request, state)
        if injected is not None:
            return injected
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vec = demo_model.embed(text)
            value: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if as_base64 else vec
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(demo_model.count_tokens(t) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": demo_model.EMBED_MODEL_NAME,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def admin_faults(request: Request) -> Response:
        if not _is_loopback(request.client.host if request.client else None):
            return _error(403, "the admin API only answers loopback clients", "permission_error")
        if request.method == "POST":
            body = await _json_body(request)
            if isinstance(body, JSONResponse):
                return body
            changes = dict(body)
            if changes.get("reset"):
                state.streams_completed = state.streams_cancelled = state.streams_dropped = 0
            try:
                if "tokens_per_second" in changes:
                    # Pacing is not a fault but a demo wants to change it live ("slow model").
                    tps = float(changes.pop("tokens_per_second"))
                    if tps < 0:
                        raise ValidationError("tokens_per_second cannot be negative")
                    state.tokens_per_second = tps
                state.faults.update(changes)
            except (TypeError, ValueError) as exc:
                return _error(400, f"bad tokens_per_second: {exc}", "invalid_request_error")
            except ValidationError as exc:
                return _error(400, exc.message, "invalid_request_error")
            log.warning("faults now %s", state.faults.faults.to_dict())
        return JSONResponse(state.snapshot())

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/admin/faults", admin_faults, methods=["GET", "POST"]),
        ]
    )

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette wraps ``send``; keep a way to reach the raw uvicorn transport so the
        # "down" and "drop" faults can cut the TCP connection itself.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None and scope.get("type") == "http":
            scope[_ABORT_KEY] = transport.abort
        await app(scope, receive, send)

    return outer


# ---------------------------------------------------------------- serving


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose accepted connections send small SSE chunks at once.

    The protocol must be IPPROTO_TCP explicitly: asyncio only turns Nagle off for sockets
    whose ``proto`` says TCP, and a socket made with the default ``proto=0`` (inherited by
    every accepted connection) kept Nagle on. Then the first body chunk waited for the ACK
    of the response headers, which the client delays by 40 ms: a fixed stall in every
    time-to-first-token. TCP_NODELAY on the listener is inherited by accepted sockets too.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def serve(state: DemoServerState, sock: socket.socket) -> None:
    config = uvicorn.Config(
        build_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="holdfast demo-llm", description="Offline OpenAI-compatible demo/chaos LLM server."
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--tokens-per-second", type=float, default=200.0, help="streaming rate; 0 = unpaced")
    p.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    f = p.add_argument_group("faults (also settable at run time via POST /admin/faults)")
    f.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer")
    f.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests that fail")
    f.add_argument("--error-status", type=int, default=500, help="HTTP status of injected errors")
    f.add_argument("--fail-next", type=int, default=0, help="fail exactly the next N requests")
    f.add_argument("--rate-limit-rate", type=float, default=0.0, help="fraction of requests answered 429")
    f.add_argument("--rate-limit-next", type=int, default=0, help="answer exactly the next N requests 429")
    f.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    f.add_argument("--drop-after-tokens", type=int, default=-1, help="cut streams after N tokens")
    f.add_argument("--hang", action="store_true", help="accept requests and never answer")
    f.add_argument("--malformed", action="store_true", help="send broken JSON")
    f.add_argument("--malformed-tool-args", action="store_true", help="send tool calls with broken arguments")
    f.add_argument("--down", action="store_true", help="drop every model request's connection")
    f.add_argument("--unknown-tool", action="store_true", help="call a tool that was not offered")
    return p


def run_cli(argv: list[str]) -> int:
    """``holdfast demo-llm``: serve until SIGINT/SIGTERM; returns the process exit code."""
    args = _parser().parse_args(argv)
    if not _is_loopback(args.host):
        print(f"demo-llm: refusing to bind {args.host}: the demo server is loopback only", file=sys.stderr)
        return 2
    try:
        faults = Faults(
            latency=args.latency,
            error_rate=args.error_rate,
            error_status=args.error_status,
            fail_next=args.fail_next,
            rate_limit_rate=args.rate_limit_rate,
            rate_limit_next=args.rate_limit_next,
            retry_after=args.retry_after,
            drop_after_tokens=args.drop_after_tokens,
            hang=args.hang,
            malformed=args.malformed,
            malformed_tool_args=args.malformed_tool_args,
            down=args.down,
            unknown_tool=args.unknown_tool,
        )
    except ValidationError as exc:
        print(f"demo-llm: {exc.message}", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"demo-llm: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    state = DemoServerState(tokens_per_second=args.tokens_per_second, faults=FaultState(faults, seed=args.seed))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"holdfast demo LLM server (model {demo_model.MODEL_NAME}) on http://{host}:{port}/v1 pid={os.getpid()}",
        flush=True,
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(state, sock))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(sys.argv[1:]))
