"""Conversation routes: list, create, read (messages paged), rename, delete, export, branch, and
``POST /v1/conversations/{id}/messages``, which runs a turn.

A turn answers as Server-Sent Events by default (``stream: true``): one SSE event per turn event,
``event:`` its type and ``data:`` the same JSON object as ``holdfast chat --json`` writes, plus the
``request_id``; the last is ``TurnFinished``. ``stream: false`` waits and answers one JSON object
(:func:`runtime.serve.turns.turn_result`). A client that disconnects mid-stream cancels the
turn; the agent keeps the partial answer, marked ``interrupted``. Another turn running in the
conversation is a 409. With ``Idempotency-Key``, see :mod:`runtime.serve.idempotency`.

Every route is scoped to the caller: another user's conversation id, a missing one and a
malformed one all answer the same 404.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from runtime.core.errors import AppError, NotFoundError, ValidationError, describe
from runtime.core.events import TurnEvent, TurnFinished
from runtime.core.messages import ChatMessage
from runtime.serve.auth import Principal
from runtime.serve.errors import GlobalErrorHandler
from runtime.serve.idempotency import Claim, fingerprint, message_id_for
from runtime.serve.state import Caller, ServeState, State
from runtime.serve.turns import RunningTurn, brief, busy_error, turn_result

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

#: Messages read per page when branching a long conversation.
_PAGE = 200
#: Most items one page of a list answers (``limit``'s maximum, as for messages).
MAX_LIST = 500
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ConversationOut(BaseModel):
    """A conversation as lists show it; times are epoch seconds."""

    id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int
    system_prompt: str
    parent_id: str | None = None
    fork_seq: int | None = None


class ConversationList(BaseModel):
    """A page of the caller's conversations, most recently updated first; pass ``next_offset``
    as ``offset`` for the next page (None: this is the last). ``total`` counts them all."""

    conversations: list[ConversationOut]
    total: int
    next_offset: int | None


class ConversationCreate(BaseModel):
    """A new conversation; ``system_prompt`` defaults to ``[agent].system_prompt``."""

    title: str = Field("New conversation", min_length=1, max_length=200)
    system_prompt: str | None = Field(None, max_length=20_000)


class ConversationRename(BaseModel):
    """A new title."""

    title: str = Field(min_length=1, max_length=200)


class MessageOut(BaseModel):
    """A stored message (``seq`` is its position; ``metadata`` says e.g. ``interrupted``)."""

    id: str
    role: str
    content: str
    seq: int | None
    created_at: float
    tool_calls: list[dict[str, Any]] = []
    tool_call_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] = {}


class MessagePage(BaseModel):
    """A page of messages, oldest first; pass ``next_before`` as ``before`` for the older page."""

    messages: list[MessageOut]
    next_before: int | None


class MessageIn(BaseModel):
    """A user message to run a turn on; ``stream`` false answers one JSON object instead of SSE."""

    content: str = Field(min_length=1)
    stream: bool = True


class BranchIn(BaseModel):
    """Branch a conversation: a new one sharing its messages up to ``from_message_id`` (default:
    all of them), titled ``title`` (default: the original's title with " (branch)").

    The branch is :meth:`ConversationStore.branch`'s (as ``holdfast conversations branch`` and
    the TUI's /edit make): a parent pointer and a fork seq, no message copied; its
    ``parent_id`` and ``fork_seq`` say where it leaves the original."""

    from_message_id: str | None = Field(None, max_length=128)
    title: str | None = Field(None, min_length=1, max_length=200)


def _out(info: Any) -> ConversationOut:
    return ConversationOut(
        id=info.id,
        title=info.title,
        created_at=info.created_at,
        updated_at=info.updated_at,
        message_count=info.message_count,
        system_prompt=info.system_prompt,
        parent_id=info.parent_id or None,
        fork_seq=info.fork_seq,
    )


def _message(m: ChatMessage) -> MessageOut:
    data = m.to_dict()
    return MessageOut(
        id=m.id,
        role=m.role,
        content=m.content,
        seq=m.seq,
        created_at=m.created_at,
        tool_calls=list(data.get("tool_calls") or []),
        tool_call_id=m.tool_call_id,
        name=m.name,
        metadata=json.loads(json.dumps(m.metadata, default=str)),
    )


@router.get("", response_model=ConversationList)
async def list_conversations(
    state: State,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="Conversations per page.")] = 50,
    offset: Annotated[
        int, Query(ge=0, le=2**53, description="How many to skip (the previous page's next_offset).")
    ] = 0,
) -> ConversationList:
    """A page of the caller's conversations, most recently updated first (the host's listing:
    :meth:`runtime.host.runtime.Runtime.conversation_page`)."""
    page = await state.runtime.conversation_page(caller.user_id, limit=limit, offset=offset)
    return ConversationList(
        conversations=[_out(c) for c in page.conversations], total=page.total, next_offset=page.next_offset
    )


@router.post("", response_model=ConversationOut, status_code=201)
async def create_conversation(body: ConversationCreate, state: State, caller: Caller) -> ConversationOut:
    """Create an empty conversation of the caller."""
    prompt = state.config.agent.system_prompt if body.system_prompt is None else body.system_prompt
    conv_id = await state.runtime.store.create(caller.user_id, title=body.title, system_prompt=prompt)
    return _out(await state.runtime.store.get(conv_id))


@router.get("/{conversation_id}", response_model=ConversationOut)
async def get_conversation(conversation_id: str, state: State, caller: Caller) -> ConversationOut:
    """One of the caller's conversations."""
    return _out(await state.turns.owned(caller.user_id, conversation_id))


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def rename_conversation(
    conversation_id: str, body: ConversationRename, state: State, caller: Caller
) -> ConversationOut:
    """Retitle one of the caller's conversations."""
    await state.turns.owned(caller.user_id, conversation_id)
    await state.runtime.store.rename(conversation_id, body.title)
    return _out(await state.runtime.store.get(conversation_id))


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, state: State, caller: Caller) -> Response:
    """Delete one of the caller's conversations and everything stored with it."""
    await state.turns.owned(caller.user_id, conversation_id)
    await state.runtime.store.delete(conversation_id)
    return Response(status_code=204)


@router.get("/{conversation_id}/messages", response_model=MessagePage)
async def read_messages(
    conversation_id: str,
    state: State,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="Messages per page.")] = 50,
    before: Annotated[int | None, Query(ge=0, le=2**53, description="Only messages with seq below this.")] = None,
) -> MessagePage:
    """A page of stored messages (hidden ones included), oldest first, newest page first."""
    await state.turns.owned(caller.user_id, conversation_id)
    page = await state.runtime.store.read_tail(conversation_id, limit, before_seq=before)
    first_seq = page[0].seq if page else None
    more = len(page) == limit and first_seq not in (None, 0)
    return MessagePage(messages=[_message(m) for m in page], next_before=first_seq if more else None)


@router.get("/{conversation_id}/export", response_class=PlainTextResponse)
async def export_conversation(
    conversation_id: str,
    state: State,
    caller: Caller,
    format: Annotated[Literal["md", "json"], Query(description="md (Markdown) or json.")] = "md",
) -> Response:
    """The whole conversation as Markdown or JSON."""
    await state.turns.owned(caller.user_id, conversation_id)
    text = await state.runtime.export_conversation(conversation_id, format)
    media = "application/json" if format == "json" else "text/markdown; charset=utf-8"
    return Response(text, media_type=media)


@router.post("/{conversation_id}/branch", response_model=ConversationOut, status_code=201)
async def branch_conversation(conversation_id: str, body: BranchIn, state: State, caller: Caller) -> ConversationOut:
    """A branch of this conversation sharing its messages up to ``from_message_id`` (default: all).

    Stored once, not copied (:meth:`ConversationStore.branch`); the message is looked up a page
    at a time from the newest. NotFoundError (404) if it is not in the conversation.
    """
    info = await state.turns.owned(caller.user_id, conversation_id)
    store = state.runtime.store
    at_seq: int | None = None
    before: int | None = None
    while at_seq is None:
        page = await store.read_tail(conversation_id, _PAGE, before_seq=before)
        if body.from_message_id is None:
            at_seq = page[-1].seq if page and page[-1].seq is not None else -1
            break
        at_seq = next((m.seq for m in page if m.id == body.from_message_id), None)
        if at_seq is None and (len(page) < _PAGE or not page or page[0].seq in (None, 0)):
            raise NotFoundError(f"message {body.from_message_id} is not in conversation {conversation_id}")
        before = page[0].seq
    title = body.title or f"{info.title} (branch)"[:200]
    new_id = await store.branch(conversation_id, at_seq, user_id=caller.user_id, title=title)
    return _out(await store.get(new_id))


# ---------------------------------------------------------------- turns


def check_message(text: str, max_chars: int) -> str:
    """``text`` if it is a sendable message; ValidationError (400) if blank or too long."""
    if not text.strip():
        raise ValidationError("the message is empty")
    if len(text) > max_chars:
        raise ValidationError(f"the message is {len(text)} characters; the limit is {max_chars}")
    return text


def sse(seq: int, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event: ``id``, ``event`` (the turn event's type) and one ``data`` line."""
    kind = str(data.get("type", "message"))
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


def event_dict(event: TurnEvent, request_id: str) -> dict[str, Any]:
    """A turn event as the stream sends it: ``holdfast chat --json``'s object plus ``request_id``."""
    data = event.to_dict()
    data["request_id"] = request_id
    return data


def _on_done(state: ServeState, caller: Principal, claim: Claim | None, request_fp: str, request_id: str) -> Any:
    async def done(events: list[TurnEvent], cancelled: bool) -> None:
        finished = next((e for e in reversed(events) if isinstance(e, TurnFinished)), None)
        try:
            if finished is not None:
                await state.limiter.add_tokens(caller.limit_key, int(finished.usage.get("total_tokens", 0)))
            if claim is not None:
                if busy_error(events) is not None:
                    await state.idempotency.release(claim)
                else:
                    await state.idempotency.finish(claim, request_fp, [event_dict(e, request_id) for e in events])
        except AppError as exc:
            log.warning("after the turn: %s", describe(exc))

    return done


async def start_turn(
    state: ServeState,
    caller: Principal,
    conversation_id: str,
    text: str,
    *,
    idempotency_key: str | None,
    request_id: str,
    route: str,
    model: str | None = None,
) -> tuple[RunningTurn | None, list[TurnEvent], list[dict[str, Any]] | None]:
    """Start a turn, or find the stored result of its Idempotency-Key.

    ``model``: the upstream model of this turn (None: the configured one); part of what makes a
    retried request the same request. Returns (the running turn, its first events) for a new
    turn, or (None, [], stored events) for a replay. Raises 409 when another turn holds the
    conversation, 429 over the token limit.
    """
    text = check_message(text, state.config.server.max_message_chars)
    await state.limiter.check_tokens(caller.limit_key)
    request_fp = fingerprint(route, conversation_id, text, *([model] if model else []))
    claim: Claim | None = None
    if idempotency_key is not None:
        claim = await state.idempotency.begin(caller.user_id, idempotency_key, request_fp)
        if not claim.owner:
            return None, [], claim.events
    try:
        running = state.turns.start(
            caller.user_id,
            conversation_id,
            text,
            on_done=_on_done(state, caller, claim, request_fp, request_id),
            model=model,
            # A turn run again after its first owner crashed stores the user's message once.
            message_id=message_id_for(caller.user_id, idempotency_key, conversation_id) if idempotency_key else None,
        )
    except AppError:
        if claim is not None:
            await state.idempotency.release(claim)
        raise
    head = await running.first()
    busy = busy_error(head)
    if busy is not None:
        raise busy
    return running, head, None


async def stream_events(
    running: RunningTurn, head: list[TurnEvent], request_id: str, handler: GlobalErrorHandler, path: str
) -> AsyncIterator[bytes]:
    """The turn's events as SSE; closing this stream (the client left) cancels the turn."""
    seq = 0
    try:
        for event in head:
            seq += 1
            yield sse(seq, event_dict(event, request_id))
        try:
            async for event in running.rest():
                seq += 1
                yield sse(seq, event_dict(event, request_id))
        except Exception as exc:  # noqa: BLE001 - the status is sent: report the failure in-band
            body = json.loads(bytes(handler.response(exc, method="POST", path=path).body))
            seq += 1
            yield sse(seq, {"type": "error", **body})
    finally:
        running.cancel()


async def _collect(running: RunningTurn, head: list[TurnEvent]) -> list[TurnEvent]:
    events = list(head)
    try:
        async for event in running.rest():
            events.append(event)
    finally:
        running.cancel()
    return events


@router.post(
    "/{conversation_id}/messages",
    responses={
        200: {
            "description": "The turn's events as Server-Sent Events (stream: true) or its result as JSON.",
            "content": {"text/event-stream": {}, "application/json": {}},
        }
    },
)
async def post_message(
    conversation_id: str,
    body: MessageIn,
    request: Request,
    state: State,
    caller: Caller,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Run a turn on the caller's conversation with this user message."""
    await state.turns.owned(caller.user_id, conversation_id)
    request_id: str = request.state.request_id
    running, head, replayed = await start_turn(
        state,
        caller,
        conversation_id,
        body.content,
        idempotency_key=idempotency_key,
        request_id=request_id,
        route="messages",
    )
    if running is None:
        stored = replayed or []
        headers = {"Idempotent-Replayed": "true"}
        if body.stream:
            chunks = [sse(i + 1, data) for i, data in enumerate(stored)]
            return StreamingResponse(iter(chunks), media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        return JSONResponse(turn_result(stored), headers=headers)
    if body.stream:
        handler: GlobalErrorHandler = request.app.state.error_handler
        return StreamingResponse(
            stream_events(running, head, request_id, handler, request.url.path),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    events = await _collect(running, head)
    return JSONResponse(turn_result([brief(e) for e in events]))
