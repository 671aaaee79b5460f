"""The offline demo/chaos LLM server: an OpenAI-compatible HTTP API on loopback.

Endpoints: ``POST /v1/chat/completions`` (SSE streaming and plain JSON, tool calls, usage,
``n``, ``stop``, ``max_tokens``, ``tool_choice``), ``GET /v1/models``, ``GET /v1/models/{id}``,
``POST /v1/embeddings`` (float or base64), and ``GET/POST /admin/faults`` (loopback clients
only) to inspect and change the injected faults and the quirk profile at run time.

Requests are validated like the OpenAI API (:mod:`runtime.demo.schema`): every malformed
request gets a 4xx JSON error object naming the parameter, an unknown model a 404
``model_not_found``, an unknown route or method a JSON 404 or 405, a body above
``--max-body-bytes`` (8 MiB by default) a 413. The server answers in the wire format of its
quirk profile (:mod:`runtime.demo.profiles`), chosen by ``--profile`` or ``POST /admin/faults``.

Run it with ``python -m runtime.demo.server --host 127.0.0.1 --port N [--profile NAME] [fault
flags]``; :func:`run_cli` is the same entry point for ``holdfast demo-llm``. The replies come
from :mod:`runtime.demo.model` and are streamed piece by piece at ``--tokens-per-second``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import ipaddress
import itertools
import logging
import math
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime.core.errors import ValidationError
from runtime.demo import model as demo_model
from runtime.demo.faults import Faults, FaultState, as_bool
from runtime.demo.generation import generate
from runtime.demo.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from runtime.demo.schema import (
    ApiError,
    ChatRequest,
    check_tool_messages,
    model_not_found,
    parse_chat_request,
    parse_embedding_request,
    parse_json_object,
)
from runtime.demo.wire import Answer, Event, completion_body, stream_events

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ABORT_KEY = "holdfast.abort"
#: Default most bytes of a request body (8 MiB); larger bodies get 413.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: A body this much over the limit is not read to its end before the 413 (the connection closes).
_DRAIN_FACTOR = 8
#: Default seconds a request body may take to arrive (nginx's client_body_timeout is 60).
BODY_TIMEOUT = 30.0
#: Streamed pieces (over all choices) above which a stream's events are built off the event loop.
_BIG_STREAM = 20_000
#: Events a stream sends before it lets other requests run (an unpaced stream never sleeps).
_YIELD_EVERY = 256
#: Connections the listening socket queues before the server accepts them (uvicorn's default).
LISTEN_BACKLOG = 2048


@dataclass
class DemoServerState:
    """Everything one server instance keeps: pacing, faults, profile and what it has seen.

    ``start_profile`` is the profile ``{"reset": true}`` returns to (the one given at start).
    """

    tokens_per_second: float = 200.0
    faults: FaultState = field(default_factory=FaultState)
    profile: Profile = field(default_factory=lambda: PROFILES[DEFAULT_PROFILE])
    start_profile: str = DEFAULT_PROFILE
    max_body_bytes: int = MAX_BODY_BYTES
    #: Seconds a request body may take to arrive whole; then 408 (a client that declared more
    #: bytes than it sent would otherwise hold the request open forever).
    body_timeout: float = BODY_TIMEOUT
    streams_completed: int = 0
    streams_cancelled: int = 0
    streams_dropped: int = 0
    #: Set when the server begins to stop; requests cut off by the stop end quietly.
    stopping: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> str:
        """A fresh ``chatcmpl-demo-N`` completion id."""
        return f"chatcmpl-demo-{next(self._ids)}"

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /admin/faults`` answers: faults, request count, profile, stream counters."""
        data = self.faults.snapshot()
        data.update(
            profile=self.profile.name,
            profile_imitates=self.profile.imitates,
            profile_changes=self.profile.changes,
            profiles=list(PROFILES),
            streams_completed=self.streams_completed,
            streams_cancelled=self.streams_cancelled,
            streams_dropped=self.streams_dropped,
            tokens_per_second=self.tokens_per_second,
            max_body_bytes=self.max_body_bytes,
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


async def _disconnected_within(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds`` (the latency fault); True as soon as the client goes away instead.

    A client that gives up, or a server that stops, ends the wait: it used to run out the
    whole latency holding the request (and then the stop printed a traceback).
    """
    try:
        async with asyncio.timeout(seconds):
            await _wait_for_disconnect(receive)
    except TimeoutError:
        return False
    return True


async def _abort(scope: Scope) -> None:
    """Drop the TCP connection without a response (the client sees a connection error)."""
    abort = scope.get(_ABORT_KEY)
    if abort is not None:
        abort()
    # Let the transport's connection_lost run so the server does not try to answer.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _apply_faults(request: Request, state: DemoServerState, *, model_call: bool = True) -> Response | None:
    """Apply the request-level faults; None means go on and answer normally. ``model_call=False``
    for the model listings (see :meth:`FaultState.decide`)."""
    action = state.faults.decide(model_call=model_call)
    faults = state.faults.faults
    if action == "down":
        await _abort(request.scope)
        return Response(status_code=503)  # only reached when the transport could not be aborted
    if faults.latency > 0 and await _disconnected_within(request.receive, faults.latency):
        return Response(status_code=499)  # nobody is listening any more (nginx's "client closed")
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


def _api_error(exc: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    if exc.status_code == 408:  # the rest of the body may still come: the connection cannot be reused
        headers = {**(headers or {}), "connection": "close"}
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _read_body(request: Request, state: DemoServerState) -> bytes:
    """The request body, at most ``state.max_body_bytes`` bytes, read within ``state.body_timeout``.

    A larger body is read to its end (up to a few times the limit, so the client that is still
    sending it sees the answer rather than a reset connection) and refused.

    Raises:
        ApiError: 413 when the body is larger than the limit; 408 when it has not arrived whole
            in time (a ``Content-Length`` larger than what was sent, or a stalled upload).
    """
    limit = state.max_body_bytes
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else 0
    too_big = size > limit
    parts: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(state.body_timeout):
            if size <= limit * _DRAIN_FACTOR:
                async for part in request.stream():
                    received += len(part)
                    if received > limit:
                        too_big = True
                        if received > limit * _DRAIN_FACTOR:
                            break
                    else:
                        parts.append(part)
                size = max(size, received)
    except ClientDisconnect:
        # Gone mid-upload: nobody reads the answer, and it is not a server error to log.
        raise ApiError(499, "The client closed the connection before sending the whole body.") from None
    except TimeoutError:
        expected = f"of {declared} " if declared.isdigit() else ""
        raise ApiError(
            408,
            f"Timed out reading the request body: {received} bytes {expected}arrived in {state.body_timeout:g} s.",
            code="request_timeout",
        ) from None
    if too_big:
        raise ApiError(
            413,
            f"Request body too large: {size} bytes; this server accepts at most {limit} bytes.",
            code="request_too_large",
        )
    return b"".join(parts)


# ---------------------------------------------------------------- streaming


_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class _ChatStream:
    """An SSE response that paces its tokens and can be cut, like a flaky real endpoint.

    ``events`` come from :func:`runtime.demo.wire.stream_events`: each is sent after its pacing
    weight in token intervals (``1 / tokens_per_second`` seconds each); the ``malformed`` fault
    puts a broken chunk first, ``drop_after_tokens`` cuts the connection after that many tokens.
    """

    def __init__(self, state: DemoServerState, events: list[Event], completion_id: str) -> None:
        self.state = state
        self.events = events
        if state.faults.faults.malformed:
            broken = b'data: {"id": "' + completion_id.encode() + b'", "choices": [{"delta": {"content"\n\n'
            self.events = [(broken, 0.0), *events]

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
        paced = 0.0
        for count, (payload, weight) in enumerate(self.events, 1):
            if count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # an unpaced stream must not keep the loop from other requests
            if disconnected.is_set():
                state.streams_cancelled += 1
                return
            if weight:
                if 0 <= drop_after <= tokens:
                    state.streams_dropped += 1
                    await _abort(scope)
                    return
                # Pace against the start time so the rate does not drift with send() costs.
                wait = start + paced * interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                tokens += 1
                paced += weight
            await send({"type": "http.response.body", "body": payload, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        state.streams_completed += 1


# ---------------------------------------------------------------- endpoints


def _chat_model(name: str, profile: Profile) -> None:
    """Check that ``name`` is the chat model (or, under a profile, one of its aliases).

    Raises:
        ApiError: 404 ``model_not_found`` for any other name, as OpenAI answers.
    """
    if name == demo_model.MODEL_NAME or name in profile.model_aliases:
        return
    if name == demo_model.EMBED_MODEL_NAME:
        raise ApiError(
            404,
            f"The model `{name}` is an embedding model and does not support chat completions.",
            code="model_not_found",
        )
    raise model_not_found(name)


def _choices(request: ChatRequest, profile: Profile) -> int:
    """How many choices to send: ``n``, unless the profile ignores or refuses it.

    Raises:
        ApiError: 400 for ``n > 1`` under a profile that refuses it (llama.cpp's message).
    """
    n = request.n or 1
    if n > 1 and profile.choices == "reject":
        raise ApiError(400, "Only one completion choice is allowed", param="n", code="invalid_value")
    return 1 if profile.choices == "ignore" else n


def _tool_choice(request: ChatRequest) -> tuple[demo_model.ToolChoice, str | None]:
    """``tool_choice`` as the demo model takes it: a mode, and the forced tool's name if named."""
    choice = request.tool_choice
    if choice is None:
        return "auto", None
    if isinstance(choice, str):
        return choice, None
    return "auto", choice.function.name


def _think_weight(state: DemoServerState, pieces: int) -> float:
    """Pacing weight of one reasoning piece, so a paced reasoning lasts ``think_seconds``."""
    if state.tokens_per_second <= 0 or pieces == 0:
        return 1.0
    return state.profile.think_seconds * state.tokens_per_second / pieces


def _apply_admin_changes(state: DemoServerState, changes: dict[str, Any]) -> None:
    """Apply a ``POST /admin/faults`` body: ``reset``, ``profile``, ``tokens_per_second``, faults.

    ``{"reset": true}`` clears every fault, the counters, and returns to the start profile
    before the rest applies. Everything is checked before anything changes.

    Raises:
        ValidationError: an unknown profile or fault, or a value of the wrong type or range.
    """
    changes = dict(changes)
    reset = as_bool("reset", changes.get("reset", False))  # {"reset": "no"} used to reset
    profile = get_profile(changes.pop("profile")) if "profile" in changes else None
    tps = state.tokens_per_second
    if "tokens_per_second" in changes:
        # Pacing is not a fault but a demo wants to change it live ("slow model").
        raw = changes.pop("tokens_per_second")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < float("inf"):
            raise ValidationError(f"tokens_per_second must be a number >= 0, got {raw!r}")
        tps = float(raw)
    probe = FaultState(state.faults.faults)
    probe.update(dict(changes))  # raises before anything is changed
    if reset:
        state.streams_completed = state.streams_cancelled = state.streams_dropped = 0
        state.profile = get_profile(state.start_profile)
    state.faults.update(changes)
    state.tokens_per_second = tps
    if profile is not None:
        state.profile = profile


Endpoint = Callable[[Request], Awaitable[Response | _ChatStream]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    """``endpoint``, answering a JSON 500 (``server_error``) for an exception it lets out.

    Only a bug gets here. Starlette's own last-resort handler answers too, but then raises the
    exception again, and uvicorn closes the connection: the client's next request on that
    keep-alive connection was reset. Answering here keeps the connection usable.
    """

    async def guarded(request: Request) -> Response | _ChatStream:
        try:
            return await endpoint(request)
        except Exception as exc:
            log.exception("demo server error on %s %s", request.method, request.url.path)
            return _api_error(ApiError(500, f"demo: internal error ({type(exc).__name__})", err_type="server_error"))

    return guarded


def build_app(state: DemoServerState) -> ASGIApp:
    """The ASGI app for one server; ``state`` is shared with the caller (tests read it)."""

    async def chat_completions(request: Request) -> Response | _ChatStream:
        profile = state.profile
        try:
            chat = parse_chat_request(await _read_body(request, state))
            _chat_model(chat.model, profile)
            if profile.paired_tool_messages:
                check_tool_messages(chat.messages)
            if chat.tools is not None and not profile.tools:
                raise ApiError(400, f"{chat.model} does not support tools", param="tools")
            n = _choices(chat, profile)
        except ApiError as exc:
            return _api_error(exc)
        injected = await _apply_faults(request, state)
        if injected is not None:
            return injected
        faults = state.faults.faults
        mode, forced = _tool_choice(chat)
        reply = demo_model.respond(
            chat.raw_messages, chat.raw_tools, unknown_tool=faults.unknown_tool, tool_choice=mode, forced_tool=forced
        )
        reasoning = demo_model.thinking(chat.raw_messages, reply) if profile.reasoning else None
        choice = generate(
            reply, limit=chat.limit, stops=chat.stops, reasoning=reasoning, context_window=profile.context_window
        )
        answer = Answer(state.next_id(), int(time.time()), chat.model, (choice,) * n)
        if chat.stream and profile.streams:
            build = functools.partial(
                stream_events,
                profile,
                answer,
                include_usage=chat.include_usage,
                broken_args=faults.malformed_tool_args,
                think_weight=_think_weight(state, len(choice.reasoning)),
            )
            # n = 128 long replies are 256,000 events: built on the loop, they held every other
            # request up for seconds. Small answers stay on the loop (a thread hop costs TTFT).
            big = n * (len(choice.pieces) + len(choice.reasoning)) > _BIG_STREAM
            events = await asyncio.to_thread(build) if big else build()
            return _ChatStream(state, events, answer.id)
        if faults.malformed:
            return Response(b'{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        return JSONResponse(completion_body(profile, answer, broken_args=faults.malformed_tool_args))

    def _model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "holdfast"}

    async def models(request: Request) -> Response:
        injected = await _apply_faults(request, state, model_call=False)
        if injected is not None:
            return injected
        # The profile's aliases too: Ollama lists its models by their tagged names.
        names = (demo_model.MODEL_NAME, *state.profile.model_aliases, demo_model.EMBED_MODEL_NAME)
        return JSONResponse({"object": "list", "data": [_model_card(name) for name in names]})

    async def model(request: Request) -> Response:
        name = str(request.path_params["model_id"])
        known = (demo_model.MODEL_NAME, demo_model.EMBED_MODEL_NAME, *state.profile.model_aliases)
        if name not in known:
            return _api_error(model_not_found(name))
        injected = await _apply_faults(request, state, model_call=False)
        if injected is not None:
            return injected
        return JSONResponse(_model_card(name))

    async def embeddings(request: Request) -> Response:
        try:
            body = parse_embedding_request(await _read_body(request, state))
            # The chat model embeds too (clients that configure one model use it for both).
            if body.model not in (demo_model.EMBED_MODEL_NAME, demo_model.MODEL_NAME, *state.profile.model_aliases):
                raise model_not_found(body.model)
            if body.dimensions is not None and body.dimensions > demo_model.EMBED_DIM:
                raise ApiError(
                    400,
                    f"Invalid 'dimensions': this model has {demo_model.EMBED_DIM} dimensions, got {body.dimensions}.",
                    param="dimensions",
                    code="invalid_value",
                )
        except ApiError as exc:
            return _api_error(exc)
        injected = await _apply_faults(request, state)
        if injected is not None:
            return injected
        texts = body.texts
        data = []
        for index, text in enumerate(texts):
            # ``dimensions`` (OpenAI's shortened embeddings): the demo hashes into that many slots.
            vec = demo_model.embed(text, body.dimensions or demo_model.EMBED_DIM)
            value: Any = (
                base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
                if body.encoding_format == "base64"
                else vec
            )
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
            try:
                changes = parse_json_object(await _read_body(request, state))
            except ApiError as exc:
                return _api_error(exc)
            try:
                _apply_admin_changes(state, changes)
            except ValidationError as exc:
                return _error(400, exc.message, "invalid_request_error")
            log.warning("profile %s, faults now %s", state.profile.name, state.faults.faults.to_dict())
        return JSONResponse(state.snapshot())

    async def not_found(request: Request, exc: Exception) -> Response:
        return _api_error(ApiError(404, f"Invalid URL ({request.method} {request.url.path})"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        allow = (exc.headers or {}).get("Allow", "") if isinstance(exc, HTTPException) else ""
        error = ApiError(
            405,
            f"Method {request.method} is not allowed for {request.url.path}; allowed: {allow or 'none'}.",
            code="method_not_allowed",
        )
        return _api_error(error, headers={"allow": allow} if allow else None)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Only reached through a bug: still an OpenAI error object, never a text/plain page.
        log.exception("demo server error on %s %s", request.method, request.url.path)
        return _api_error(ApiError(500, f"demo: internal error ({type(exc).__name__})", err_type="server_error"))

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _guarded(chat_completions), methods=["POST"]),
            Route("/v1/models", _guarded(models), methods=["GET"]),
            Route("/v1/models/{model_id:path}", _guarded(model), methods=["GET"]),
            Route("/v1/embeddings", _guarded(embeddings), methods=["POST"]),
            Route("/admin/faults", _guarded(admin_faults), methods=["GET", "POST"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed, Exception: server_error},
    )
    # "/v1/chat/completions/" is an unknown route (a JSON 404 naming it), not an empty 307 that
    # curl without -L shows as nothing and the SDK turns into a second request.
    app.router.redirect_slashes = False

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette wraps ``send``; keep a way to reach the raw uvicorn transport so the
        # "down" and "drop" faults can cut the TCP connection itself.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None and scope.get("type") == "http":
            scope[_ABORT_KEY] = transport.abort
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            if not state.stopping:
                raise
            # Cancelled by the server's stop after its grace period: end it like the stop ended
            # the others (no await here: the loop is closing), without a traceback.
            abort = scope.get(_ABORT_KEY)
            if abort is not None:
                abort()

    return outer


# ---------------------------------------------------------------- serving


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose accepted connections send small SSE chunks at once.

    The protocol must be IPPROTO_TCP explicitly: asyncio only turns Nagle off for sockets
    whose ``proto`` says TCP, and a socket made with the default ``proto=0`` (inherited by
    every accepted connection) kept Nagle on. Then the first body chunk waited for the ACK
    of the response headers, which the client delays by 40 ms: a fixed stall in every
    time-to-first-token. TCP_NODELAY on the listener is inherited by accepted sockets too.

    The socket is listening when this returns: :func:`run_cli` prints its "on http://..." line
    before the event loop starts serving, and a client that connects as soon as it reads that
    line waits in the backlog instead of being refused (a bound socket that is not yet
    listening refuses connections).

    Raises:
        OSError: the address cannot be bound (in use, not local, ...).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _DemoUvicorn(uvicorn.Server):
    """uvicorn's server, stopping as a demo server should: at once, like a killed one.

    uvicorn waits up to ``timeout_graceful_shutdown`` for requests in flight, then cancels
    them, and each cancelled request printed a traceback ("Exception in ASGI application"):
    Ctrl-C during a stream showed 40 lines of it. Here every open connection is cut first
    (the client sees the connection drop, as when a real server goes down), so streams and
    hanging requests end at once; the rare request still running is ended quietly by the app.
    """

    def __init__(self, config: uvicorn.Config, state: DemoServerState) -> None:
        super().__init__(config)
        self.demo_state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Cut every open connection, then uvicorn's own shutdown (see the class docstring)."""
        self.demo_state.stopping = True
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await super().shutdown(sockets)


async def serve(state: DemoServerState, sock: socket.socket) -> None:
    """Serve the demo app on the bound ``sock`` with uvicorn (h11, no access log) until stopped.

    Stopping (SIGINT, SIGTERM) cuts the requests in flight at once (see :class:`_DemoUvicorn`).
    """
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
    await _DemoUvicorn(config, state).serve(sockets=[sock])


#: ``run_cli``'s exit code after Ctrl-C (SIGINT): 128 + 2, the shell convention.
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose usage errors are one line on stderr, then exit 2:
    ``<prog>: <what is wrong>. See '<prog> --help'.`` (argparse prints its whole usage block)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` (argparse's, e.g. ``argument --port: invalid int value: 'abc'``) as
        one line naming the help, and exit 2 (raises SystemExit, as argparse does)."""
        self.exit(2, f"{self.prog}: {message.rstrip('.')}. See '{self.prog} --help'.\n")


class _Terminated(Exception):
    """SIGTERM arrived: stop serving and exit 0 (see :func:`run_cli`)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _parser(prog: str = "holdfast demo-llm") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Offline OpenAI-compatible demo/chaos LLM server.")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--tokens-per-second", type=float, default=200.0, help="streaming rate; 0 = unpaced")
    p.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=list(PROFILES),
        help="speak like a real server: " + "; ".join(f"{p.name} ({p.imitates})" for p in PROFILES.values()),
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=MAX_BODY_BYTES,
        help=f"largest request body accepted; larger ones get 413 (default {MAX_BODY_BYTES})",
    )
    f = p.add_argument_group("faults (also settable at run time via POST /admin/faults)")
    f.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer")
    f.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests that fail")
    f.add_argument("--error-status", type=int, default=500, help="HTTP status of injected errors")
    f.add_argument(
        "--fail-next", type=int, default=0, help="fail exactly the next N model calls (chat, embeddings; not /models)"
    )
    f.add_argument("--rate-limit-rate", type=float, default=0.0, help="fraction of requests answered 429")
    f.add_argument(
        "--rate-limit-next", type=int, default=0, help="answer exactly the next N model calls 429 (not /models)"
    )
    f.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    f.add_argument("--drop-after-tokens", type=int, default=-1, help="cut streams after N tokens")
    f.add_argument("--hang", action="store_true", help="accept requests and never answer")
    f.add_argument("--malformed", action="store_true", help="send broken JSON")
    f.add_argument("--malformed-tool-args", action="store_true", help="send tool calls with broken arguments")
    f.add_argument("--down", action="store_true", help="drop every model request's connection")
    f.add_argument("--unknown-tool", action="store_true", help="call a tool that was not offered")
    return p


def run_cli(argv: list[str], prog: str = "holdfast demo-llm") -> int:
    """``holdfast demo-llm``: serve until SIGINT/SIGTERM; returns the process exit code.

    ``prog`` names the command in help and errors. Exit codes: 0 after SIGTERM (a requested
    stop: how Holdfast and service managers end the server), 130 after Ctrl-C (SIGINT, the
    shell's "interrupted"), 2 for bad usage (one line, see :class:`OneLineParser`), 1 when the
    port cannot be bound.
    """
    args = _parser(prog).parse_args(argv)

    def usage(message: str) -> int:
        # The same one line as the parser's own errors (OneLineParser.error).
        print(f"{prog}: {message.rstrip('.')}. See '{prog} --help'.", file=sys.stderr)
        return 2

    if not _is_loopback(args.host):
        return usage(f"refusing to bind {args.host}: the demo server is loopback only")
    if not 0 <= args.port <= 65535:
        return usage(f"argument --port: {args.port} is not a port (0-65535; 0 picks a free one)")
    if not (math.isfinite(args.tokens_per_second) and args.tokens_per_second >= 0):
        return usage(
            f"argument --tokens-per-second: must be a number >= 0 (0: unpaced), got {args.tokens_per_second:g}"
        )
    if args.max_body_bytes < 1:
        return usage(f"argument --max-body-bytes: must be at least 1, got {args.max_body_bytes}")
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
        return usage(exc.message)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"{prog}: cannot bind {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    state = DemoServerState(
        tokens_per_second=args.tokens_per_second,
        faults=FaultState(faults, seed=args.seed),
        profile=get_profile(args.profile),
        start_profile=args.profile,
        max_body_bytes=args.max_body_bytes,
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"holdfast demo LLM server (model {demo_model.MODEL_NAME}, profile {args.profile}) "
        f"on http://{host}:{port}/v1 pid={os.getpid()}",
        flush=True,
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # uvicorn handles SIGINT/SIGTERM while it serves and raises the signal again once it has
    # shut down; this handler (also there before uvicorn's and after) turns SIGTERM into a return.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        asyncio.run(serve(state, sock))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except _Terminated:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(sys.argv[1:], prog="python -m runtime.demo.server"))
