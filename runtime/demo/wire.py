"""The bytes on the wire: a plain ``chat.completion`` body, or the SSE events of a stream,
in the format of a :class:`~runtime.demo.profiles.Profile`.

The OpenAI format (the default profile) follows the Chat Completions reference: a first chunk
with ``role`` and empty ``content``, one chunk per streamed piece, a chunk with the
``finish_reason`` and an empty ``delta``, then (with ``stream_options.include_usage``) a chunk
with empty ``choices`` and the ``usage``, then ``data: [DONE]``. Every other profile changes
only what its fields say.

A stream is built whole before the first byte is sent (a demo reply is at most a few thousand
pieces), as a list of :data:`Event`: the SSE bytes and the pacing weight, the number of token
intervals to wait before sending them (0 for bookkeeping chunks). The OpenAI content chunks are
assembled from a pre-encoded prefix, so the default profile costs one small ``json.dumps`` per
piece.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runtime.demo.generation import Generation
from runtime.demo.model import DemoToolCall
from runtime.demo.profiles import Profile

#: (SSE bytes, pacing weight in token intervals; 0 means "not a token").
Event = tuple[bytes, float]

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
OPENROUTER_PROCESSING = b": OPENROUTER PROCESSING\n\n"
#: Bytes of tool-call arguments per streamed fragment (OpenAI sends a few characters each).
ARGUMENT_FRAGMENT = 8
#: Most fragments one call's arguments are streamed in: longer arguments get longer fragments
#: (arguments of megabytes, echoed from the user's text, made a million events).
MAX_ARGUMENT_FRAGMENTS = 512


@dataclass(frozen=True)
class Answer:
    """One response: its id, creation time (seconds since the epoch), model name and choices."""

    id: str
    created: int
    model: str
    choices: tuple[Generation, ...]

    def usage(self) -> dict[str, int]:
        """OpenAI's ``usage``: the prompt counted once, the completions of every choice summed."""
        prompt = self.choices[0].prompt_tokens if self.choices else 0
        completion = sum(c.completion_tokens for c in self.choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def sse(data: object) -> bytes:
    """One SSE ``data:`` event for a JSON value."""
    return b"data: " + _dumps(data).encode() + b"\n\n"


def _arguments(call: DemoToolCall, profile: Profile, broken: bool) -> str | Any:
    """The ``arguments`` value: JSON text (OpenAI), or the parsed object (llama.cpp).

    ``broken`` (the ``malformed_tool_args`` fault) cuts the JSON short so it no longer parses.
    """
    text = call.arguments[:-1] + ',"' if broken else call.arguments
    if profile.arguments_as_object and not broken:
        try:
            return json.loads(text)
        except ValueError:  # cut short by max_tokens: llama.cpp would send the text as it is
            return text
    return text


def _timings(gen: Generation) -> dict[str, float]:
    """llama.cpp's ``timings`` object, with the demo's nominal speeds (0.1 ms per prompt token,
    5 ms per generated token)."""
    prompt_ms, predicted_ms = gen.prompt_tokens * 0.1, gen.completion_tokens * 5.0
    return {
        "prompt_n": gen.prompt_tokens,
        "prompt_ms": prompt_ms,
        "predicted_n": gen.completion_tokens,
        "predicted_ms": predicted_ms,
        "predicted_per_second": 200.0,
    }


def _content(profile: Profile, text: str | None) -> str | list[dict[str, str]] | None:
    if text is None or not profile.content_blocks:
        return text
    return [{"type": "text", "text": text}]


# ---------------------------------------------------------------- plain completion


def completion_body(profile: Profile, answer: Answer, *, broken_args: bool = False) -> dict[str, Any]:
    """The ``chat.completion`` object for a non-streaming request (or a ``no-stream`` server)."""
    choices = []
    for index, gen in enumerate(answer.choices):
        message: dict[str, Any] = {"role": "assistant", "content": _content(profile, gen.text), "refusal": None}
        if gen.reasoning_text is not None:
            message["reasoning_content"] = gen.reasoning_text
        if gen.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c, profile, broken_args)},
                }
                for c in gen.tool_calls
            ]
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": gen.finish_reason})
    body: dict[str, Any] = {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": profile.system_fingerprint,
        "choices": choices,
        "usage": answer.usage(),
    }
    if profile.timings and answer.choices:
        body["timings"] = _timings(answer.choices[0])
    return body


# ---------------------------------------------------------------- streaming


class _Chunks:
    """Builds the ``chat.completion.chunk`` events of one stream."""

    def __init__(self, profile: Profile, answer: Answer, include_usage: bool, broken_args: bool) -> None:
        self.profile = profile
        self.answer = answer
        self.include_usage = include_usage
        self.broken_args = broken_args
        self.envelope: dict[str, Any] = {
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": answer.created,
            "model": answer.model,
            "system_fingerprint": profile.system_fingerprint,
        }
        # Everything before the choice index, and after the finish reason: the constant parts.
        self._prefix = ("data: " + _dumps(self.envelope)[:-1] + ',"choices":[{"index":').encode()
        self._suffix = b"}]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"
        self._base: dict[str, Any] = {"role": "assistant"} if profile.role_in_every_delta else {}

    def chunk(self, index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        """One chunk for choice ``index``; ``extra`` top-level fields (llama.cpp's timings)."""
        if extra:
            data = dict(self.envelope)
            data["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if self.include_usage:
                data["usage"] = None
            data.update(extra)
            return sse(data)
        return b"".join(
            (
                self._prefix,
                str(index).encode(),
                b',"delta":',
                _dumps(delta).encode(),
                b',"logprobs":null,"finish_reason":',
                _dumps(finish).encode(),
                self._suffix,
            )
        )

    def head(self, index: int) -> list[Event]:
        """The role-only first chunk (OpenAI sends it; Ollama does not)."""
        if self.profile.role_in_every_delta:
            return []
        return [(self.chunk(index, {"role": "assistant", "content": ""}), 0.0)]

    def body(self, index: int, gen: Generation, think_weight: float) -> list[Event]:
        """Reasoning pieces, then text pieces or tool calls, each a paced token event."""
        base, profile = self._base, self.profile
        out: list[Event] = [
            (self.chunk(index, {**base, "reasoning_content": piece}), think_weight) for piece in gen.reasoning
        ]
        if profile.content_blocks:
            out.extend((self.chunk(index, {**base, "content": [{"type": "text", "text": p}]}), 1.0) for p in gen.pieces)
        elif base:
            out.extend((self.chunk(index, {**base, "content": p}), 1.0) for p in gen.pieces)
        else:
            out.extend((self.chunk(index, {"content": p}), 1.0) for p in gen.pieces)
        out.extend(self._tool_calls(index, gen.tool_calls))
        return out

    def _whole_call(self, call: DemoToolCall) -> dict[str, Any]:
        arguments = _arguments(call, self.profile, self.broken_args)
        return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}

    def _tool_calls(self, index: int, calls: tuple[DemoToolCall, ...]) -> Iterator[Event]:
        if not calls:
            return
        base, style = self._base, self.profile.tool_call_style
        if style == "whole_no_index":
            delta = {**base, "content": "", "tool_calls": [self._whole_call(c) for c in calls]}
            yield self.chunk(index, delta), 1.0
            return
        if style == "whole_index_zero":
            for call in calls:
                yield self.chunk(index, {**base, "tool_calls": [{"index": 0, **self._whole_call(call)}]}), 1.0
            return
        for position, call in enumerate(calls):
            arguments = _arguments(call, self.profile, self.broken_args)
            if not isinstance(arguments, str):  # an object cannot be sent in fragments
                yield self.chunk(index, {"tool_calls": [{"index": position, **self._whole_call(call)}]}), 1.0
                continue
            head = {
                "index": position,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield self.chunk(index, {"tool_calls": [head]}), 1.0
            size = max(ARGUMENT_FRAGMENT, -(-len(arguments) // MAX_ARGUMENT_FRAGMENTS))
            for start in range(0, len(arguments), size):
                piece = {"index": position, "function": {"arguments": arguments[start : start + size]}}
                yield self.chunk(index, {"tool_calls": [piece]}), 1.0

    def finish(self, index: int, gen: Generation, last: bool) -> bytes:
        """The chunk carrying ``finish_reason`` (llama.cpp adds ``timings`` to the last one)."""
        delta = {**self._base, "content": ""} if self._base else {}
        if last and self.profile.timings:
            return self.chunk(index, delta, gen.finish_reason, timings=_timings(gen))
        return self.chunk(index, delta, gen.finish_reason)

    def usage(self) -> bytes:
        """The usage-only chunk: empty ``choices``, the whole response's ``usage``."""
        return sse({**self.envelope, "choices": [], "usage": self.answer.usage()})

    def error(self) -> bytes:
        """A mid-stream failure as OpenRouter sends it: an ``error`` object in a 200 stream and
        ``finish_reason: "error"``."""
        return sse(
            {
                **self.envelope,
                "error": {
                    "message": "demo: the upstream provider failed mid-stream",
                    "type": "server_error",
                    "code": 502,
                },
                "choices": [{"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "error"}],
            }
        )


def stream_events(
    profile: Profile,
    answer: Answer,
    *,
    include_usage: bool = False,
    broken_args: bool = False,
    think_weight: float = 1.0,
) -> list[Event]:
    """Every SSE event of one streamed response, ``[DONE]`` last.

    Args:
        profile: the wire format.
        answer: the response's choices.
        include_usage: ``stream_options.include_usage`` (``usage: null`` on every chunk, then a
            usage-only chunk), as OpenAI sends it.
        broken_args: the ``malformed_tool_args`` fault.
        think_weight: pacing weight of one reasoning piece (so reasoning lasts the profile's
            ``think_seconds``).

    With several choices, their pieces are interleaved (choice 0, 1, ... then 0 again), and only
    choice 0's pieces are paced, so ``n`` does not slow the stream down.
    """
    chunks = _Chunks(profile, answer, include_usage, broken_args)
    heads: list[Event] = []
    bodies: list[list[Event]] = []
    for index, gen in enumerate(answer.choices):
        heads.extend(chunks.head(index))
        body = chunks.body(index, gen, think_weight)
        bodies.append(body if index == 0 else [(payload, 0.0) for payload, _ in body])
    tokens: list[Event] = (
        bodies[0]
        if len(bodies) == 1
        else [event for group in itertools.zip_longest(*bodies) for event in group if event is not None]
    )
    out: list[Event] = [(OPENROUTER_PROCESSING, 0.0)] if profile.keepalive_comments else []
    out.extend(heads)
    if profile.error_after_tokens >= 0:
        out.extend(tokens[: profile.error_after_tokens])
        out.extend([(chunks.error(), 0.0), (DONE, 0.0)])
    else:
        out.extend(tokens)
        last = len(answer.choices) - 1
        out.extend((chunks.finish(i, gen, i == last), 0.0) for i, gen in enumerate(answer.choices))
        if include_usage or profile.always_usage:
            out.append((chunks.usage(), 0.0))
        out.append((DONE, 0.0))
    if profile.keepalive_comments:
        spaced: list[Event] = []
        for event in out:
            if spaced and event[0] is not DONE:
                spaced.append((KEEPALIVE, 0.0))
            spaced.append(event)
        out = spaced
    return out
