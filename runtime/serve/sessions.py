"""Session routes: the spec's SessionManager (:mod:`runtime.state.sessions`) for API clients.

A session holds a client's state between requests: JSON ``data`` and the ``active_conversation_id``
it shows. Create, get (refreshes ``last_accessed``), update (fields merged atomically), extend
(never past ``created_at + [redis].session_max_ttl``), delete, and list the caller's live
sessions. Another user's session id, like a missing one, is a 404. Expired sessions disappear
by their Redis TTL and are swept from the indexes by the server's cleanup loop (the expiry index,
:meth:`runtime.state.sessions.SessionManager.cleanup_expired_sessions`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from runtime.core.errors import NotFoundError, ValidationError
from runtime.serve.state import Caller, ServeState, State
from runtime.state.sessions import Session

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

#: Largest ``data`` accepted, in bytes of JSON.
MAX_DATA_BYTES = 16_384


class SessionOut(BaseModel):
    """A live session; times are epoch seconds."""

    id: str
    user_id: str
    created_at: float
    last_accessed: float
    expires_at: float
    active_conversation_id: str | None
    data: dict[str, Any]


class SessionList(BaseModel):
    """The caller's live sessions, most recently used first."""

    sessions: list[SessionOut]


class SessionCreate(BaseModel):
    """A new session: ``ttl`` seconds (default ``[redis].session_ttl``, capped at ``session_max_ttl``)."""

    data: dict[str, Any] = Field(default_factory=dict)
    ttl: int | None = Field(None, ge=1, le=10**9)
    active_conversation_id: str | None = Field(None, max_length=128)


class SessionUpdate(BaseModel):
    """Fields of ``data`` to set (others are kept) and/or the active conversation."""

    data: dict[str, Any] = Field(default_factory=dict)
    active_conversation_id: str | None = Field(None, max_length=128)


class SessionExtend(BaseModel):
    """Seconds to extend by (default ``[redis].session_ttl``); the result is capped."""

    seconds: int | None = Field(None, ge=1, le=10**9)


def _out(session: Session) -> SessionOut:
    return SessionOut(
        id=session.id,
        user_id=session.user_id,
        created_at=session.created_at,
        last_accessed=session.last_accessed,
        expires_at=session.expires_at,
        active_conversation_id=session.active_conversation_id,
        data=dict(session.data),
    )


def _check_data(data: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(data, default=str)) > MAX_DATA_BYTES:
        raise ValidationError(f"session data is larger than {MAX_DATA_BYTES} bytes of JSON")
    return data


async def _owned(state: ServeState, user_id: str, session_id: str) -> Session:
    session = await state.runtime.sessions.get_session(session_id) if len(session_id) <= 128 else None
    if session is None or session.user_id != user_id:
        raise NotFoundError("session does not exist or has expired")
    return session


@router.post("", response_model=SessionOut, status_code=201)
async def create_session(body: SessionCreate, state: State, caller: Caller) -> SessionOut:
    """Create a session of the caller."""
    sessions = state.runtime.sessions
    if body.active_conversation_id is not None:
        await state.turns.owned(caller.user_id, body.active_conversation_id)
    session = await sessions.create_session(caller.user_id, _check_data(body.data), ttl=body.ttl)
    if body.active_conversation_id is not None:
        await sessions.set_active_conversation(session.id, body.active_conversation_id)
    return _out(await _owned(state, caller.user_id, session.id))


@router.get("", response_model=SessionList)
async def list_sessions(state: State, caller: Caller) -> SessionList:
    """The caller's live sessions (every face: TUI and CLI processes too), most recently used first."""
    found = await state.runtime.sessions.get_user_sessions(caller.user_id)
    return SessionList(sessions=[_out(s) for s in found])


@router.get("/{session_id}", response_model=SessionOut)
async def get_session(session_id: str, state: State, caller: Caller) -> SessionOut:
    """One of the caller's live sessions (reading it refreshes ``last_accessed``)."""
    return _out(await _owned(state, caller.user_id, session_id))


@router.patch("/{session_id}", response_model=SessionOut)
async def update_session(session_id: str, body: SessionUpdate, state: State, caller: Caller) -> SessionOut:
    """Set data fields and/or the active conversation of one of the caller's sessions."""
    await _owned(state, caller.user_id, session_id)
    sessions = state.runtime.sessions
    if body.active_conversation_id is not None:
        await state.turns.owned(caller.user_id, body.active_conversation_id)
        await sessions.set_active_conversation(session_id, body.active_conversation_id)
    if body.data and not await sessions.update_session(session_id, _check_data(body.data)):
        raise NotFoundError("session does not exist or has expired")
    return _out(await _owned(state, caller.user_id, session_id))


@router.post("/{session_id}/extend", response_model=SessionOut)
async def extend_session(session_id: str, body: SessionExtend, state: State, caller: Caller) -> SessionOut:
    """Push the session's expiry out (capped at its maximum lifetime; never shortened)."""
    await _owned(state, caller.user_id, session_id)
    if not await state.runtime.sessions.extend_session(session_id, body.seconds):
        raise NotFoundError("session does not exist or has expired")
    return _out(await _owned(state, caller.user_id, session_id))


@router.delete("/{session_id}", status_code=204)
async def delete_session(session_id: str, state: State, caller: Caller) -> Response:
    """End one of the caller's sessions."""
    await _owned(state, caller.user_id, session_id)
    await state.runtime.sessions.delete_session(session_id)
    return Response(status_code=204)
