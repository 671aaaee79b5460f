"""Quirk profiles: the demo server speaking like the real OpenAI-compatible servers people use.

A profile changes only the wire format and the server's limits, never the demo model's
decisions: the same request gets the same words and tool calls under every profile, so a
client test can compare what it assembled with what :mod:`runtime.demo.model` decided.

Profiles (``--profile NAME`` at start, ``POST /admin/faults {"profile": NAME}`` at run time):

``openai``
    OpenAI's Chat Completions API, exactly: tool-call arguments streamed in fragments under a
    stable ``index``, usage only when ``stream_options.include_usage`` asks for it (then in a
    final chunk with empty ``choices``), ``n`` choices honoured, a history whose tool calls and
    ``tool`` results do not pair up refused with 400. The default.
``ollama``
    Ollama's ``/v1`` compatibility layer: every chunk repeats ``role``; each tool call arrives
    whole (arguments complete) in a single chunk, with no ``index``; no leading role-only
    chunk; ``system_fingerprint: "fp_ollama"``; ``n`` is ignored (always one choice); the model
    also answers to its tagged name ``holdfast-demo:latest``.
``llamacpp``
    llama.cpp's ``llama-server``: tool-call ``arguments`` sent as a JSON object rather than a
    JSON string (streamed and plain); each parallel call arrives whole in its own chunk, every
    one at ``index: 0``; the last chunk carries llama.cpp's ``timings`` object; ``n > 1`` is
    refused with 400 "Only one completion choice is allowed".
``vllm-reasoning``
    vLLM with a reasoning parser (DeepSeek-R1, Qwen3, QwQ): ``delta.reasoning_content`` pieces
    for several seconds (:attr:`Profile.think_seconds`, when the stream is paced) before the
    first ``delta.content``; a plain completion has ``message.reasoning_content``. Reasoning
    counts against ``max_tokens``, as it does on vLLM.
``mistral``
    Mistral's La Plateforme API (and GLM): ``delta.content`` and ``message.content`` are lists
    of typed blocks ``[{"type": "text", "text": ...}]`` instead of strings.

``ollama``, ``llamacpp``, ``vllm-reasoning``, ``no-tools`` and ``truncating`` (local servers)
also accept tool results that answer no call, and calls left unanswered: they render whatever
arrives into the model's chat template. The others refuse such a history as OpenAI does.
``openrouter``
    OpenRouter: SSE comment lines (``: OPENROUTER PROCESSING``, then ``: keep-alive`` between
    chunks) and always a usage-only final chunk with empty ``choices``, asked for or not.
``no-stream``
    Gateways and older local servers that ignore ``stream: true``: the answer is a plain JSON
    ``chat.completion`` with ``content-type: application/json``.
``no-tools``
    A model without tool support (Ollama answers this way for such models): any request that
    sends ``tools`` gets 400 "... does not support tools".
``truncating``
    A local server run with a small context (Ollama's default ``num_ctx``, llama.cpp's
    ``--ctx-size``): :attr:`Profile.context_window` tokens hold the prompt and the reply; a
    prompt too long for it is cut to fit, and a reply that does not fit stops with
    ``finish_reason: "length"``.
``flaky-stream``
    OpenRouter or a vLLM/TGI backend failing mid-answer: after
    :attr:`Profile.error_after_tokens` pieces the 200 stream carries a chunk with an ``error``
    object and ``finish_reason: "error"``, then ``[DONE]``. Plain completions are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runtime.core.errors import ValidationError

ToolCallStyle = Literal["fragments", "whole_no_index", "whole_index_zero"]
ChoicePolicy = Literal["honour", "ignore", "reject"]


@dataclass(frozen=True)
class Profile:
    """How the server speaks: one field per quirk; the defaults are OpenAI's own behaviour.

    ``imitates`` names the real server(s) and ``changes`` says, in a sentence, what differs
    from OpenAI; both are reported by ``GET /admin/faults``.
    """

    name: str
    imitates: str
    changes: str
    #: ``fragments``: a head chunk (id, name) then argument pieces under a stable ``index``
    #: (OpenAI); ``whole_no_index``: every call complete in one chunk, no ``index`` (Ollama);
    #: ``whole_index_zero``: each call complete in its own chunk, all at ``index`` 0 (llama.cpp).
    tool_call_style: ToolCallStyle = "fragments"
    #: Tool-call ``arguments`` as a JSON object instead of a JSON-encoded string (llama.cpp).
    arguments_as_object: bool = False
    #: Every chunk's delta repeats ``"role": "assistant"``, and no role-only first chunk (Ollama).
    role_in_every_delta: bool = False
    #: ``delta.content`` / ``message.content`` as a list of ``{"type": "text"}`` blocks (Mistral).
    content_blocks: bool = False
    #: Stream ``reasoning_content`` before the answer (vLLM reasoning parsers).
    reasoning: bool = False
    #: Seconds the reasoning lasts in a paced stream (``tokens_per_second > 0``); unpaced: none.
    think_seconds: float = 3.0
    #: SSE comment lines between chunks (OpenRouter's keep-alives).
    keepalive_comments: bool = False
    #: A usage-only final chunk whether or not ``include_usage`` was asked (OpenRouter).
    always_usage: bool = False
    #: Answer ``stream: true`` with a plain JSON completion.
    streams: bool = True
    #: Accept ``tools``; False answers any request carrying them with 400.
    tools: bool = True
    #: What ``n > 1`` does: honour it, ignore it (one choice), or reject it with 400.
    choices: ChoicePolicy = "honour"
    #: Tokens of context shared by prompt and reply; 0 means unlimited.
    context_window: int = 0
    #: After this many streamed pieces, an ``error`` chunk ends the stream; -1 means never.
    error_after_tokens: int = -1
    #: ``system_fingerprint`` of every response (OpenAI sends null for most models).
    system_fingerprint: str | None = None
    #: The last chunk carries llama.cpp's ``timings`` object.
    timings: bool = False
    #: Extra names the chat model answers to (Ollama's ``:latest`` tag).
    model_aliases: tuple[str, ...] = ()
    #: Refuse a history whose tool calls and ``tool`` results do not pair up, with OpenAI's 400
    #: (:func:`runtime.demo.schema.check_tool_messages`); False: local servers (Ollama,
    #: llama.cpp, vLLM) render whatever arrives into their chat template.
    paired_tool_messages: bool = True


DEFAULT_PROFILE = "openai"

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("openai", "OpenAI Chat Completions", "nothing: the exact OpenAI wire format"),
        Profile(
            "ollama",
            "Ollama's OpenAI-compatible /v1 API",
            "whole tool calls in one chunk with no index; role in every delta; n ignored; unpaired tool results accepted",
            tool_call_style="whole_no_index",
            role_in_every_delta=True,
            choices="ignore",
            system_fingerprint="fp_ollama",
            model_aliases=("holdfast-demo:latest",),
            paired_tool_messages=False,
        ),
        Profile(
            "llamacpp",
            "llama.cpp llama-server",
            "tool-call arguments as a JSON object; parallel calls all at index 0; timings; n > 1 refused; "
            "unpaired tool results accepted",
            tool_call_style="whole_index_zero",
            arguments_as_object=True,
            choices="reject",
            timings=True,
            paired_tool_messages=False,
        ),
        Profile(
            "vllm-reasoning",
            "vLLM with a reasoning parser (DeepSeek-R1, Qwen3, QwQ)",
            "reasoning_content deltas for a few seconds before the answer; unpaired tool results accepted",
            reasoning=True,
            paired_tool_messages=False,
        ),
        Profile(
            "mistral",
            "Mistral La Plateforme (and GLM)",
            "content as a list of typed text blocks instead of a string",
            content_blocks=True,
        ),
        Profile(
            "openrouter",
            "OpenRouter",
            "': keep-alive' SSE comments between chunks; a usage-only final chunk always",
            keepalive_comments=True,
            always_usage=True,
        ),
        Profile(
            "no-stream",
            "gateways and older local servers that ignore stream: true",
            "a streaming request gets a plain JSON completion",
            streams=False,
        ),
        Profile(
            "no-tools",
            "a model without tool support (Ollama's answer for such models)",
            "any request with tools gets 400 'does not support tools'",
            tools=False,
            paired_tool_messages=False,
        ),
        Profile(
            "truncating",
            "Ollama or llama.cpp run with a small context (num_ctx, --ctx-size)",
            "512 tokens of context: long prompts are cut, long replies end with finish_reason 'length'",
            context_window=512,
            paired_tool_messages=False,
        ),
        Profile(
            "flaky-stream",
            "OpenRouter or a vLLM/TGI backend failing mid-answer",
            "an error object inside the 200 stream after 8 pieces, finish_reason 'error'",
            error_after_tokens=8,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises:
        ValidationError: no such profile (the message lists the known ones).
    """
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValidationError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
