"""The typed events :meth:`LLMClient.stream_chat` yields, in the order a turn sees them.

A normal stream is ``Notice* (ReasoningDelta | TextDelta)* ToolCallReady* Usage Finish``:
reasoning models (vLLM, DeepSeek, Qwen) stream their thinking first. A stream that broke
after text was shown ends with :class:`StreamInterrupted` (the partial text is kept, never
retried). When the LLM is unavailable and a fallback answered, the stream is one
:class:`FallbackReply` followed by ``Finish(reason="fallback")``. ``Finish.reason`` is the
endpoint's ``finish_reason`` as sent: ``stop``, ``tool_calls``, ``length`` (cut at the output
limit), ``content_filter``; a stream that reports ``error`` ends in :class:`StreamInterrupted`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runtime.core.messages import ToolCall


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the assistant's reply text, to show as it arrives (``delta.content`` of a chunk)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of a reasoning model's thinking (``delta.reasoning_content`` or ``delta.reasoning``).

    Shown apart from the answer and never sent back to the model; it counts as progress for
    the stream's timeouts.
    """

    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the client changed about how it talks to the endpoint, said once.

    ``kind``: ``prompt_tools`` (the endpoint rejected ``tools``; tools are described in the
    prompt from now on) or ``no_stream`` (the endpoint answered a stream request with a whole
    JSON reply; later calls do not ask for a stream). ``text`` is the sentence a person reads.
    """

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    """A complete tool call; ``arguments`` is the parsed JSON object."""

    call: ToolCall
    arguments: dict[str, Any]

    @property
    def name(self) -> str:
        """The called tool's (function's) name."""
        return self.call.name


@dataclass(frozen=True, slots=True)
class ToolCallError:
    """A tool call the model sent but that cannot be run (bad JSON, no name)."""

    call: ToolCall
    error: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion, as in the chat-completions ``usage`` object."""

    prompt_tokens: int
    completion_tokens: int
    #: True when the endpoint sent no usage and we counted the tokens ourselves.
    estimated: bool = False
    #: Of ``completion_tokens``, those spent on reasoning (reported, or counted from the
    #: reasoning text when the endpoint does not say).
    reasoning_tokens: int = 0
    #: True when the endpoint reported the totals but not the reasoning share, so
    #: ``reasoning_tokens`` was counted here (at most ``completion_tokens``).
    reasoning_estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Finish:
    """End of a stream with its finish reason.

    ``reason`` is the chat-completions ``finish_reason`` (``stop``, ``length``, ``tool_calls``,
    ``content_filter``) or our ``fallback`` (a :class:`FallbackReply` answered); ``model`` is
    the model the endpoint says answered ("" if it did not say).
    """

    reason: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class StreamInterrupted:
    """The stream broke after tokens were shown; ``partial_text`` is what the user saw.

    ``finish_reason`` is ``error`` when the endpoint itself reported the failure inside the
    stream (an ``error`` object or ``finish_reason: "error"``), else empty (the connection
    broke, a timeout or the deadline passed). ``reasoning`` is the thinking streamed before it.
    """

    partial_text: str
    error: str
    error_type: str = ""
    finish_reason: str = ""
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class FallbackReply:
    """The LLM could not answer; ``source`` is ``cache`` (an earlier answer to the same
    prompt) or ``degraded`` (a notice saying what is down and that the message is kept)."""

    text: str
    source: str
    error: str
    stale: bool = True
    details: dict[str, Any] = field(default_factory=dict)


StreamEvent = (
    TextDelta
    | ReasoningDelta
    | Notice
    | ToolCallReady
    | ToolCallError
    | Usage
    | Finish
    | StreamInterrupted
    | FallbackReply
)


def parse_arguments(call: ToolCall) -> ToolCallReady | ToolCallError:
    """Parse a call's JSON arguments; anything but a JSON object is a :class:`ToolCallError`.

    Arguments encoded twice (a JSON string holding the object's JSON text, as some servers
    send them) are the object; the call is then kept with the object's JSON text.
    """
    if not call.name:
        return ToolCallError(call, "the model sent a tool call without a function name")
    raw = call.arguments.strip() or "{}"
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ToolCallError(call, f"arguments of {call.name} are not valid JSON ({exc.msg} at char {exc.pos})")
    if isinstance(parsed, str) and parsed.strip().startswith("{"):
        try:
            inner = json.loads(parsed)
        except json.JSONDecodeError:
            inner = None
        if isinstance(inner, dict):
            return ToolCallReady(ToolCall(id=call.id, name=call.name, arguments=parsed), inner)
    if not isinstance(parsed, dict):
        return ToolCallError(call, f"arguments of {call.name} must be a JSON object, got {type(parsed).__name__}")
    return ToolCallReady(call, parsed)
