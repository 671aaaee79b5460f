"""The OpenAI-compatible face: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Any OpenAI client talks to Holdfast as to a model named ``holdfast`` (the configured upstream
model) or ``holdfast/<upstream model>`` (that upstream model for this request's turn only: the
server's model stays as configured, and concurrent requests may each name their own). The
response's ``model`` is the name the client sent. ``GET /v1/models`` lists ``holdfast`` and
``holdfast/<m>`` for every model the upstream lists (:class:`~runtime.serve.models.ModelCatalog`:
asked through the llm Guard, kept 30 s; with the upstream down, the last list, else the
configured model alone). A ``holdfast/<m>`` the upstream does not list is OpenAI's 404
``model_not_found`` error (``error.code``); while the upstream could never be asked, the turn
is tried and answers as the upstream does.

The request's last user message is one turn of a Holdfast conversation, so memory recall, tools
and the token budget happen behind a plain client; earlier messages of the request are not
replayed (the conversation remembers them). Which conversation:

1. the ``X-Holdfast-Conversation`` header (one of the caller's, or a new one with that id);
2. else the request's ``user`` field: one stable conversation per (caller, ``user``);
3. else a new conversation per request.

The answer's ``X-Holdfast-Conversation`` header names it. Streaming and not follow the Chat
Completions wire format (``chat.completion`` / ``chat.completion.chunk`` objects, ``data: [DONE]``,
``stream_options.include_usage``); errors are the global handler's body, whose
``error.message`` (and ``error.code`` where OpenAI has one) the OpenAI SDK reads. A turn that
produced no answer (the upstream LLM down, no cached answer) is a 503, so clients retry.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from runtime.core.errors import ExternalServiceError, NotFoundError, ValidationError
from runtime.core.events import AssistantSaved, TextDelta, TurnEvent, TurnFailed, TurnFinished
from runtime.serve.auth import Principal
from runtime.serve.conversations import SSE_HEADERS, event_dict, start_turn
from runtime.serve.errors import GlobalErrorHandler
from runtime.serve.state import Caller, ServeState, State
from runtime.serve.turns import RunningTurn, brief, turn_result
from runtime.state import codec

router = APIRouter(prefix="/v1", tags=["openai"])

CONVERSATION_HEADER = "X-Holdfast-Conversation"


class ContentPart(BaseModel):
    """One part of a multi-part message; only ``text`` parts carry text for a turn."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    """A Chat Completions message; fields Holdfast does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    """``include_usage``: send a last chunk with the turn's token usage."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of the Chat Completions request Holdfast reads; other fields are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    #: Choices asked for; only 1 (or none) is served: one request is one turn.
    n: int | None = None


def _text(message: ChatMessageIn) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text or "" for part in message.content or [] if part.type == "text")


def last_user_text(messages: list[ChatMessageIn]) -> str:
    """The text of the last ``user`` message; ValidationError when there is none or it is empty."""
    for message in reversed(messages):
        if message.role == "user":
            text = _text(message)
            if not text.strip():
                raise ValidationError("the last user message is empty")
            return text
    raise ValidationError("messages has no user message")


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "holdfast"}


@router.get("/models")
async def list_models(state: State, caller: Caller) -> dict[str, Any]:
    """The models this server answers as: ``holdfast`` and ``holdfast/<upstream model>``."""
    return {"object": "list", "data": [_model_card(m) for m in await state.models.names()]}


@router.get("/models/{model:path}")
async def retrieve_model(model: str, state: State, caller: Caller) -> dict[str, Any]:
    """One model card; 404 ``model_not_found`` for a model this server does not answer as."""
    await state.models.resolve(model)
    return _model_card(model)


async def _conversation(state: ServeState, caller: Principal, header: str | None, user: str | None) -> str:
    turns = state.turns
    if header is not None:
        try:
            codec.check_id(header, CONVERSATION_HEADER)
        except ValidationError as exc:
            raise ValidationError(f"{CONVERSATION_HEADER}: {exc.message}") from None
        try:
            await turns.owned(caller.user_id, header)
        except NotFoundError:
            # A new id is created by the turn; one that exists as another user's stays a 404.
            try:
                await state.runtime.store.get(header)
            except NotFoundError:
                return header
            raise
        return header
    if user:
        digest = hashlib.sha256(f"{caller.user_id}\x00{user}".encode("utf-8", "surrogatepass")).hexdigest()
        return f"oai_{digest[:24]}"
    return state.runtime.new_conversation_id()


def _chunk(completion_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


def _usage(usage: dict[str, int]) -> dict[str, int]:
    return {
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }


async def _stream(
    running: RunningTurn | None,
    events: list[TurnEvent],
    replay: list[dict[str, Any]] | None,
    *,
    model: str,
    include_usage: bool,
    handler: GlobalErrorHandler,
) -> AsyncIterator[bytes]:
    """Chat Completions chunks from the turn's events (live, or replayed from an Idempotency-Key)."""
    created = int(time.time())
    completion_id = ""
    sent_text = False
    usage: dict[str, int] = {}
    failure = ""

    async def source() -> AsyncIterator[dict[str, Any]]:
        if replay is not None:
            for data in replay:
                yield data
            return
        for event in events:
            yield event_dict(event, "")
        if running is not None:
            async for event in running.rest():
                yield event_dict(event, "")

    try:
        async for data in source():
            kind = data.get("type")
            if not completion_id:
                completion_id = f"chatcmpl-{data.get('turn_id', '')}"
                yield _chunk(completion_id, created, model, {"role": "assistant", "content": ""}, None)
            if kind == TextDelta.__name__:
                sent_text = True
                yield _chunk(completion_id, created, model, {"content": data["text"]}, None)
            elif kind == AssistantSaved.__name__ and not sent_text and data.get("source") == "cache":
                yield _chunk(completion_id, created, model, {"content": data["content"]}, None)
            elif kind == TurnFailed.__name__:
                failure = str(data.get("error") or "the turn failed")
            elif kind == TurnFinished.__name__:
                usage = _usage(data.get("usage") or {})
        if failure and not sent_text:
            error = ExternalServiceError(failure, service="llm")
            body = json.loads(bytes(handler.response(error, method="POST", path="/v1/chat/completions").body))
            yield b"data: " + json.dumps(body).encode() + b"\n\n"
            return
        yield _chunk(completion_id, created, model, {}, "stop")
        if include_usage:
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
            yield b"data: " + json.dumps(final).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
    finally:
        if running is not None:
            running.cancel()


@router.post(
    "/chat/completions",
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    state: State,
    caller: Caller,
    x_holdfast_conversation: Annotated[str | None, Header(max_length=128)] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Chat Completions: the last user message is a turn of a Holdfast conversation, run with
    the upstream model ``holdfast/<model>`` names (``holdfast``: the configured one)."""
    if body.n is not None and body.n != 1:
        # OpenAI would return n choices; answering one silently would lose what the client asked for.
        raise ValidationError(
            f"n={body.n} is not supported: Holdfast answers each request with one turn (one choice); send n=1 or omit it",
            details={"param": "n", "code": "unsupported_value"},
        )
    upstream = await state.models.resolve(body.model)
    text = last_user_text(body.messages)
    conv = await _conversation(state, caller, x_holdfast_conversation, body.user)
    request_id: str = request.state.request_id
    running, head, replay = await start_turn(
        state,
        caller,
        conv,
        text,
        idempotency_key=idempotency_key,
        request_id=request_id,
        route="chat.completions",
        model=upstream,
    )
    headers = {CONVERSATION_HEADER: conv}
    handler: GlobalErrorHandler = request.app.state.error_handler
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(running, head, replay, model=body.model, include_usage=include_usage, handler=handler),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **headers},
        )
    if running is not None:
        events = list(head)
        try:
            async for event in running.rest():
                events.append(event)
        finally:
            running.cancel()
        dicts = [brief(e) for e in events]
    else:
        dicts = replay or []
    result = turn_result(dicts)
    if result["failed"] or result["message_id"] is None:
        raise ExternalServiceError(result["error"] or "the turn produced no answer", service="llm")
    completion = {
        "id": f"chatcmpl-{result['turn_id']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result["content"], "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(result["usage"]),
    }
    return JSONResponse(completion, headers=headers)
