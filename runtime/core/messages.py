"""The message types shared by the conversation store, the context window and the agent.

A :class:`ChatMessage` is what is stored (with its id, position and cached token count);
:meth:`ChatMessage.to_openai` is what is sent. Keeping one type avoids lossy conversions
between the store, the prompt builder and the LLM client.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


def new_message_id() -> str:
    """A fresh random message id: ``msg_`` and 24 hex digits (96 random bits)."""
    return "msg_" + secrets.token_hex(12)


@dataclass(frozen=True)
class ToolCall:
    """One function call requested by the model; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI Chat Completions ``tool_calls`` item:
        ``{"id", "type": "function", "function": {"name", "arguments"}}``."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        """Read the OpenAI ``tool_calls`` item shape, or a flat ``{"id", "name", "arguments"}``.

        Raises:
            KeyError: ``id`` or ``name`` is missing.
        """
        fn = data.get("function") or data
        return cls(id=str(data["id"]), name=str(fn["name"]), arguments=str(fn.get("arguments") or ""))


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation, as stored and as sent (OpenAI Chat Completions roles).

    An assistant message may carry ``tool_calls``; a ``tool`` message answers one of them by
    ``tool_call_id``. ``created_at`` is wall-clock seconds since the epoch.
    """

    role: Role
    content: str
    id: str = field(default_factory=new_message_id)
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    #: Cached chat-format token count; None until counted. Never changes unless content does.
    token_count: int | None = None
    #: Position in the conversation's live history (0-based, assigned by the store).
    seq: int | None = None

    def with_updates(self, **changes: Any) -> ChatMessage:
        """A copy with the given fields replaced (``dataclasses.replace``); raises TypeError for an unknown field."""
        return replace(self, **changes)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI Chat Completions message: ``role``, ``content``, and ``tool_calls``,
        ``tool_call_id``, ``name`` when set (no id, metadata or counts)."""
        msg: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        if self.tool_call_id is not None:
            msg["tool_call_id"] = self.tool_call_id
        if self.name:
            msg["name"] = self.name
        return msg

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dict (tool calls in OpenAI shape); :meth:`from_dict` reads it back."""
        return {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "tool_calls": [tc.to_openai() for tc in self.tool_calls],
            "tool_call_id": self.tool_call_id,
            "name": self.name,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "token_count": self.token_count,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        """Read :meth:`to_dict`'s shape or a plain OpenAI message; missing ids and times are filled in.

        Raises:
            KeyError: ``role`` is missing (or a tool call lacks ``id``/``name``).
        """
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            id=data.get("id") or new_message_id(),
            tool_calls=tuple(ToolCall.from_dict(tc) for tc in data.get("tool_calls") or ()),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            metadata=dict(data.get("metadata") or {}),
            created_at=float(data.get("created_at") or time.time()),
            token_count=data.get("token_count"),
            seq=data.get("seq"),
        )


@dataclass(frozen=True)
class ConversationSummary:
    """A summary of the archived start of a conversation; replaces those messages in prompts."""

    text: str
    covers_up_to: str  # id of the last message the summary covers
    covered_count: int
    created_at: float = field(default_factory=time.time)
    method: Literal["llm", "extractive"] = "llm"
    token_count: int | None = None


class HistoryReader(Protocol):
    """What the context window needs from the conversation store: the tail, read backwards."""

    async def read_tail(self, conversation_id: str, limit: int, *, before_seq: int | None = None) -> list[ChatMessage]:
        """Up to ``limit`` messages in chronological order, ending just before ``before_seq``
        (or at the newest message when None)."""
        ...

    async def get_summary(self, conversation_id: str) -> ConversationSummary | None:
        """The conversation's summary of its archived start, or None when nothing is archived."""
        ...
