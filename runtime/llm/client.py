"""LLMClient: chat (streamed or not), embeddings and models of any OpenAI-compatible endpoint.

Every call goes through ``Guard("llm")``: the SDK's own retries are off (``max_retries=0``)
so one logical call makes at most ``1 + max_retries`` HTTP attempts, all decided by our
retry policy. Failures are translated to the error taxonomy inside the guarded function
(:mod:`runtime.llm.errors`).

Streaming posts to ``/chat/completions`` with the httpx client directly and decodes the SSE
bytes itself (:mod:`runtime.llm.sse`), one ``json.loads`` per chunk: the SDK's request
transform and pydantic chunk objects cost milliseconds per call and tens of microseconds
per token, and a malformed chunk becomes a typed error rather than whatever the SDK raises.
Status errors are classified like the SDK's (:func:`runtime.llm.errors.error_for_response`).
A finished stream's body is read to its end so the keep-alive connection is reused. The
body is read ahead in its own task (:mod:`runtime.llm.read_ahead`) and the guarded stream
carries batches: everything that arrived since the consumer's last turn. The guard's
per-item cost (a timeout scope) is then paid per batch, not per token, whenever the
consumer falls behind; :meth:`LLMClient.stream_chat` yields the events one by one.

A stream that breaks before its first event is retried by the guard; after events reached
the caller it is not: the caller gets :class:`StreamInterrupted` with the partial text.
When the LLM is unavailable, the registered fallbacks answer (see :mod:`runtime.llm.fallbacks`).

What real endpoints send besides OpenAI's exact format is understood here, each case from a
server people use: ``delta.content`` as a string, null, or a list of typed blocks (Mistral,
GLM: text kept, thinking blocks taken as reasoning, others skipped), and OpenAI's ``refusal``
(a declined request's words are the reply); reasoning as
``reasoning_content`` (vLLM, DeepSeek) or ``reasoning`` (OpenRouter, Ollama), yielded as
:class:`ReasoningDelta` so it counts as progress and is never mistaken for the answer; an
``error`` object or ``finish_reason: "error"`` inside a 200 stream (a failure, what came
before it kept); a whole JSON reply to a stream request (``[llm].stream``); tool calls in any
of the shapes :mod:`runtime.llm.tool_assembly` accepts; an endpoint that rejects ``tools``
(then :mod:`runtime.llm.prompt_tools` describes them in the prompt for the rest of the
session, and reads requests from the reply, bare, fenced, in ``<tool_call>`` tags or inside
words, never showing them as the answer); an endpoint that refuses an optional parameter (OpenAI's
reasoning models: ``max_tokens``, which becomes ``max_completion_tokens``, and ``temperature``;
older Azure and vLLM: ``stream_options``) gets the request again without it, for the rest of the
session. Usage the endpoint does not report is counted here and marked ``estimated``.

Consume :meth:`LLMClient.stream_chat` with ``contextlib.aclosing`` (or to the end) so that
stopping early (the user pressed Esc) closes the HTTP stream at once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from runtime.config import LLMConfig
from runtime.core.errors import AppError, ExternalServiceError, ValidationError, describe
from runtime.core.safe_text import mask_url_credentials
from runtime.llm import prompt_tools
from runtime.llm.errors import SERVICE, error_for_response, translate
from runtime.llm.fallbacks import LLMFallbacks
from runtime.llm.read_ahead import ReadAhead
from runtime.llm.sse import SSEDecoder
from runtime.llm.stream_events import (
    FallbackReply,
    Finish,
    Notice,
    ReasoningDelta,
    StreamEvent,
    StreamInterrupted,
    TextDelta,
    ToolCallError,
    ToolCallReady,
    Usage,
    parse_arguments,
)
from runtime.llm.tool_assembly import ToolCallAssembler, with_unique_ids
from runtime.resilience import Resilience
from runtime.resilience.classify import is_outage

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
TokenCounter = Callable[[str], int]


_ROUGH_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PLACEHOLDER_KEY = "no-key-configured"
_DONE = b"[DONE]"
# After [DONE] the rest of the body is only the chunked-encoding terminator; a server that
# holds the connection open instead costs the keep-alive connection, not the reply.
_DRAIN_SECONDS = 1.0
#: How an SSE body starts (its field names, or a comment), told apart from a JSON reply.
_SSE_FIELDS = (b"data:", b":", b"event:", b"id:", b"retry:")
#: How an endpoint without ``GET /models`` answers it: Not Found, Method Not Allowed, Not Implemented.
_NO_MODELS_STATUSES = frozenset({404, 405, 501})


def rough_token_count(text: str) -> int:
    """Words and punctuation marks: used only when no real counter was injected."""
    return len(_ROUGH_TOKEN_RE.findall(text))


def prompt_key(request: Mapping[str, Any]) -> str:
    """Identity of a prompt for the answer cache: model, messages and tools, canonical JSON."""
    material = {k: request.get(k) for k in ("model", "messages", "tools")}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Completion:
    """A whole reply from :meth:`LLMClient.complete`; ``source`` says where it came from.

    ``finish_reason`` is the chat-completions ``finish_reason`` (``stop``, ``length``,
    ``tool_calls``, ...) or ``fallback``; ``source`` is ``primary`` for the endpoint's own
    answer, else the fallback that answered (``cache``, ``degraded``) and ``error`` says why.
    """

    text: str
    tool_calls: tuple[ToolCallReady, ...] = ()
    tool_errors: tuple[ToolCallError, ...] = ()
    usage: Usage | None = None
    finish_reason: str = "stop"
    model: str = ""
    source: str = "primary"
    error: str = ""
    #: A reasoning model's thinking before the answer (not part of ``text``).
    reasoning: str = ""

    @property
    def from_fallback(self) -> bool:
        """True when a fallback (the answer cache, the degraded notice) wrote this reply."""
        return self.source != "primary"


@dataclass
class _StreamState:
    model: str
    finish_reason: str | None = None
    done: bool = False
    usage: Usage | None = None
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)


#: Finish reasons other servers send for OpenAI's: Mistral's ``model_length`` (the context is
#: full), Anthropic-style gateways' ``max_tokens`` / ``end_turn`` / ``stop_sequence``, TGI's
#: ``eos_token``, Gemini's ``safety`` / ``recitation``, the legacy ``function_call``.
_FINISH_REASONS = {
    "length": "length",
    "model_length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "prohibited_content": "content_filter",
    "blocklist": "content_filter",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "eos_token": "stop",
}


#: How endpoints refuse a request parameter: OpenAI ("Unsupported parameter: 'max_tokens' is not
#: supported with this model. Use 'max_completion_tokens' instead.", "Unsupported value:
#: 'temperature' does not support 0.7"), Azure ("Unrecognized request argument supplied:
#: stream_options"), pydantic-validated servers ("Extra inputs are not permitted").
_REFUSAL_RE = re.compile(
    r"unsupported (?:parameter|value)|not supported|unrecognized (?:request )?argument"
    r"|extra (?:inputs|fields) (?:are )?not permitted|unknown (?:field|parameter|argument)",
    re.IGNORECASE,
)
#: Parameters a request can do without (or say another way), in the order they are looked for.
_OPTIONAL_PARAMETERS = ("stream_options", "max_tokens", "temperature")


def refused_parameter(status: int | None, message: str) -> str | None:
    """Which optional request parameter an error answer (``status``, the server's words) refuses:
    ``stream_options``, ``max_tokens`` (then sent as ``max_completion_tokens``) or ``temperature``;
    None when it refuses none of them."""
    if status not in (400, 422) or not _REFUSAL_RE.search(message):
        return None
    for name in _OPTIONAL_PARAMETERS:
        if re.search(rf"(?<!\w){name}(?!\w)", message):
            return name
    return None


def finish_reason_of(raw: object) -> str | None:
    """A chunk's or reply's ``finish_reason`` in OpenAI's words (``stop``, ``length``,
    ``tool_calls``, ``content_filter``, ``error``); an unknown one is kept as sent, lower case;
    None when there is none yet."""
    if not raw or not isinstance(raw, str):
        return None
    reason = raw.lower()
    return _FINISH_REASONS.get(reason, reason)


def _block_parts(blocks: object) -> tuple[str, str]:
    """(text, reasoning) of a ``content`` that is a list of typed blocks (Mistral, GLM, Anthropic
    gateways), or one such block: ``text`` blocks are the answer, ``thinking``/``reasoning``
    blocks (their ``thinking``, ``reasoning`` or nested ``text``) the reasoning; other blocks
    (images, references, audio) carry nothing to show and are skipped."""
    items = blocks if isinstance(blocks, list) else [blocks]
    text: list[str] = []
    reasoning: list[str] = []
    for block in items:
        if isinstance(block, str):
            text.append(block)
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type", "text")
        if kind in ("text", "output_text"):
            value = block.get("text")
            if isinstance(value, str):
                text.append(value)
        elif kind in ("thinking", "reasoning"):
            inner = block.get("thinking", block.get("reasoning", block.get("text")))
            if isinstance(inner, str):
                reasoning.append(inner)
            elif inner is not None:
                reasoning.append(_block_parts(inner)[0])
    return "".join(text), "".join(reasoning)


def _reasoning_of(container: Mapping[str, Any]) -> str:
    """``reasoning_content`` (vLLM, DeepSeek) or ``reasoning`` (OpenRouter, Ollama) of a delta or message."""
    value = container.get("reasoning_content") or container.get("reasoning")
    if not value:
        return ""
    if isinstance(value, str):
        return value
    return _block_parts(value)[0] or _block_parts(value)[1]


def _usage_of(data: Mapping[str, Any]) -> Usage:
    details = data.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return Usage(
        int(data.get("prompt_tokens") or 0),
        int(data.get("completion_tokens") or 0),
        reasoning_tokens=int(reasoning or 0),
    )


def _chunk_error(err: object) -> tuple[int, object]:
    """HTTP status and body for an ``error`` object sent inside a 200 stream or reply."""
    code = err.get("code") if isinstance(err, dict) else None
    status = int(code) if isinstance(code, (int, str)) and str(code).isdigit() and 100 <= int(code) < 600 else 502
    return status, {"error": err}


_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
# _TextGate's reading of a <think> block at the reply's start.
_DECIDING, _THINKING, _ANSWERING, _ANSWER = 0, 1, 2, 3


class _TextGate:
    """Passes text pieces on as :class:`TextDelta` events, or holds some back.

    A reply that starts with a ``<think>`` block (DeepSeek-R1 and QwQ on Ollama, llama.cpp or
    LM Studio without a reasoning parser put their thinking in ``content``) has the block taken
    as reasoning (:class:`ReasoningDelta`), never shown or saved as the answer. With tools
    described in the prompt (``tool_names`` given), what may be a tool request (a fence, a
    ``<tool_call>`` tag, a JSON object) is held until it proves not to be one, or until the
    stream ends (then it is parsed as tool calls): :class:`prompt_tools.ToolRequestGate`.
    Everything else is shown at once. Call :meth:`end` when the text is complete.
    """

    __slots__ = ("_buf", "_gate", "_phase", "_state")

    def __init__(self, state: _StreamState, tool_names: Sequence[str] | None) -> None:
        self._state = state
        self._gate = prompt_tools.ToolRequestGate(tool_names) if tool_names else None
        self._phase = _DECIDING
        self._buf = ""

    def add(self, text: str, out: list[StreamEvent]) -> None:
        if self._phase != _ANSWER:
            text = self._split_thinking(text, out)
            if not text:
                return
        gate = self._gate
        if gate is not None:
            text = gate.feed(text)
            if not text:
                return
        self._state.text.append(text)
        out.append(TextDelta(text))

    def _split_thinking(self, text: str, out: list[StreamEvent]) -> str:
        """The answer text in ``text``, once a leading ``<think>`` block (if any) is taken out."""
        buf = self._buf + text
        self._buf = ""
        if self._phase == _DECIDING:
            head = buf.lstrip()
            if not head or (len(head) < len(_THINK_OPEN) and _THINK_OPEN.startswith(head)):
                self._buf = buf  # not yet known whether a block starts
                return ""
            if not head.startswith(_THINK_OPEN):
                self._phase = _ANSWER
                return buf
            self._phase = _THINKING
            buf = head[len(_THINK_OPEN) :]
        if self._phase == _THINKING:
            end = buf.find(_THINK_CLOSE)
            if end < 0:
                keep = next((k for k in range(len(_THINK_CLOSE) - 1, 0, -1) if buf.endswith(_THINK_CLOSE[:k])), 0)
                self._think(buf[: len(buf) - keep], out)
                self._buf = buf[len(buf) - keep :]
                return ""
            self._think(buf[:end], out)
            self._phase = _ANSWERING
            buf = buf[end + len(_THINK_CLOSE) :]
        answer = buf.lstrip()  # the blank lines between the block and the answer
        if answer:
            self._phase = _ANSWER
        return answer

    def _think(self, thought: str, out: list[StreamEvent]) -> None:
        if thought:
            self._state.reasoning.append(thought)
            out.append(ReasoningDelta(thought))

    def end(self, out: list[StreamEvent]) -> None:
        """The text is complete: what was held to decide on a ``<think>`` block is passed on."""
        if self._buf:
            buf, self._buf = self._buf, ""
            if self._phase == _THINKING:
                self._think(buf, out)
            else:
                self._phase = _ANSWER
                self.add(buf, out)

    def held_text(self) -> str | None:
        return (self._gate.held() or None) if self._gate is not None else None


class LLMClient:
    """The OpenAI-compatible client every Holdfast LLM call uses.

    Args:
        config: the ``[llm]`` section (endpoint, model, timeouts in seconds, API key source,
            ``stream`` mode, tool support).
        resilience: gives ``Guard("llm")`` and the fallback chain.
        base_url: overrides ``config``'s endpoint (e.g. the demo server's URL).
        http_client: an httpx client to use (and not close); default: one of our own.
        count_tokens: counts tokens for usage an endpoint does not report (default: a rough
            word-and-punctuation count).
        environ: where the API key's environment variable is read (default: ``os.environ``).
        wall_clock: Unix seconds, for "unavailable since" in the degraded reply.

    Two things it learns about the endpoint and keeps for its lifetime (one session), each
    announced once with a :class:`Notice` event: that it rejects ``tools`` (tools are then
    described in the prompt, :mod:`runtime.llm.prompt_tools`), and, with ``stream = "auto"``,
    that it answers stream requests with a whole JSON reply (later calls do not stream).

    Raises:
        ExternalServiceError: no endpoint is configured (not retryable).
    """

    def __init__(
        self,
        config: LLMConfig,
        resilience: Resilience,
        *,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        count_tokens: TokenCounter | None = None,
        environ: Mapping[str, str] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.base_url = (base_url or config.effective_base_url).rstrip("/")
        #: The base URL as shown to people (health, notices): credentials in it masked.
        self.endpoint = mask_url_credentials(self.base_url)
        if not self.base_url:
            raise ExternalServiceError(
                "no LLM endpoint: start the demo server or set [llm].base_url", service=SERVICE, retryable=False
            )
        self.guard = resilience.guard(SERVICE)
        self.fallbacks = resilience.fallbacks
        #: Native tool calls (``tools`` in the request); False: tools described in the prompt.
        self.tools_supported = config.tools_supported
        #: Whether chat requests ask for a stream (``[llm].stream``; "auto" learns it).
        self.streams = config.stream is not False
        self._stream_mode = config.stream
        self._count = count_tokens
        self._api_key_env = config.api_key_env
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        self._timeout = timeout
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http_client is None
        api_key = config.resolve_api_key(environ) or _PLACEHOLDER_KEY
        self._chat_url = self.base_url + "/chat/completions"
        self._stream_headers = {
            "authorization": f"Bearer {api_key}",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        # The stream request is built from parts merged once: httpx's build_request re-parses
        # the URL and re-merges every header on each call (~25 us, a tenth of the client's
        # whole time to first token). The client's default headers are read here, once.
        self._chat_target = httpx.URL(self._chat_url)
        self._chat_headers = httpx.Headers(self._http.headers)
        self._chat_headers.update(self._stream_headers)
        self._chat_extensions = {"timeout": timeout.as_dict()}
        self._openai = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key,
            # openai 3.x is typed for httpx2 but accepts an httpx client (its _httpx2 module
            # adapts one); httpx is what our streaming path and respx use.
            http_client=self._http,  # type: ignore[arg-type]
            max_retries=0,  # only our RetryPolicy retries: no multiplied attempts
            timeout=timeout,  # type: ignore[arg-type]
        )
        self._model = config.effective_model
        #: Request parameters the endpoint refused (``max_tokens``, ``temperature``,
        #: ``stream_options``): left out, or renamed, for the rest of the session.
        self.refused: set[str] = set()
        self._stream_extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
        self.llm_fallbacks = LLMFallbacks.install(resilience, endpoint=self.endpoint, wall_clock=wall_clock)

    # ------------------------------------------------------------ helpers

    async def model(self) -> str:
        """The configured model, or the endpoint's first model when none is configured (vLLM, LM Studio).

        Raises:
            ExternalServiceError: the endpoint lists no models.
            AppError: listing the models failed (see :meth:`list_models`).
        """
        if not self._model:
            models = await self.list_models()
            if not models:
                raise ExternalServiceError(
                    "the LLM endpoint lists no models; set [llm].model", service=SERVICE, retryable=False
                )
            self._model = models[0]
        return self._model

    @property
    def current_model(self) -> str:
        """The model requests use, as far as known without asking the endpoint ("" before
        :meth:`model` has looked the endpoint's default up)."""
        return self._model

    def set_model(self, name: str) -> None:
        """Use ``name`` for every later request (``/model``).

        Raises:
            ValidationError: ``name`` is empty or blank.
        """
        if not name.strip():
            raise ValidationError("model name must not be empty", service=SERVICE)
        self._model = name.strip()

    def _tokens(self, text: str) -> int:
        return (self._count or rough_token_count)(text)

    async def _request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        msgs = [dict(m) for m in messages]
        tool_list = [dict(t) for t in tools or ()]
        request: dict[str, Any] = {
            "model": model or await self.model(),
            "messages": msgs,
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.config.max_output_tokens,
        }
        if self.refused:
            request = self._without_refused(request)
        if tool_list:
            if self.tools_supported:
                request["tools"] = tool_list
            else:
                request["messages"] = prompt_tools.with_tools_in_prompt(msgs, tool_list)
        return request

    def _without_refused(self, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` as this endpoint takes it: ``max_tokens`` sent as ``max_completion_tokens``
        and ``temperature`` left out once refused (OpenAI's reasoning models refuse both)."""
        out = dict(request)
        if "max_tokens" in self.refused and "max_tokens" in out:
            out["max_completion_tokens"] = out.pop("max_tokens")
        if "temperature" in self.refused:
            out.pop("temperature", None)
        return out

    def _learn_refusal(self, exc: AppError, request: dict[str, Any]) -> dict[str, Any] | None:
        """When ``exc`` says the endpoint refuses a parameter it can do without, remember that for
        the session and return ``request`` rewritten without it (None: not such a refusal)."""
        name = refused_parameter(exc.status_code, exc.message)
        if name is None or name in self.refused:
            return None
        self.refused.add(name)
        log.info("the LLM endpoint refuses %s; requests go on without it: %s", name, exc.message)
        if name == "stream_options":
            self._stream_extra = {"stream": True}
        return self._without_refused(request)

    def _switch_to_prompt_tools(self, request: dict[str, Any], tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The endpoint rejected ``tools``: describe them in the prompt from now on; returns
        ``request`` rewritten that way."""
        self.tools_supported = False
        out = {k: v for k, v in request.items() if k not in ("tools", "tool_choice")}
        out["messages"] = prompt_tools.with_tools_in_prompt(request["messages"], [dict(t) for t in tools])
        return out

    def _estimate_usage(self, request: Mapping[str, Any], completion: str, reasoning: str = "") -> Usage:
        prompt = sum(self._tokens(_content(m)) + 4 for m in request["messages"])
        if request.get("tools"):
            prompt += self._tokens(json.dumps(request["tools"]))
        thinking = self._tokens(reasoning) if reasoning else 0
        return Usage(prompt, self._tokens(completion) + thinking, estimated=True, reasoning_tokens=thinking)

    def _with_reasoning(self, usage: Usage, reasoning: str) -> Usage:
        """A reported usage without a reasoning figure gets one counted from the reasoning text
        (marked ``reasoning_estimated``; never more than the reported completion tokens, which
        include the reasoning)."""
        if not reasoning or usage.reasoning_tokens:
            return usage
        counted = min(self._tokens(reasoning), usage.completion_tokens)
        return Usage(usage.prompt_tokens, usage.completion_tokens, usage.estimated, counted, reasoning_estimated=True)

    @staticmethod
    def _tool_names(tools: Sequence[Mapping[str, Any]] | None) -> list[str]:
        return [str((t.get("function") or t).get("name")) for t in tools or ()]

    # ------------------------------------------------------------ streaming

    async def stream_chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        use_fallback: bool = True,
    ) -> AsyncIterator[StreamEvent]:
        """Stream a chat reply as typed events (see :mod:`runtime.llm.stream_events`).

        With ``[llm].stream = false`` (or an endpoint learnt not to stream) the reply is one
        non-streaming call whose events come all at once. An endpoint that rejects ``tools``
        gets the same request again at once with the tools in the prompt, after a
        :class:`Notice`.

        Raises :class:`AppError` when the call fails before any event and no fallback
        applies (a rejected request, a bad key, or ``use_fallback=False``).
        """
        try:
            request = await self._request(messages, tools, model, temperature, max_tokens)
        except AppError as exc:
            # Resolving the model needs the endpoint too; that failure takes the fallback path.
            async for event in self._fallback_events(exc, None, use_fallback):
                yield event
            return
        names = self._tool_names(tools)
        shown: list[str] = []
        reasoning: list[str] = []
        events = 0
        finish: Finish | None = None
        tool_seen = False
        while True:
            try:
                async for batch in self._batches(request, names):
                    for event in batch:
                        events += 1
                        kind = type(event)
                        if kind is TextDelta:
                            shown.append(event.text)  # type: ignore[union-attr]
                        elif kind is ReasoningDelta:
                            reasoning.append(event.text)  # type: ignore[union-attr]
                        elif kind is ToolCallReady or kind is ToolCallError:
                            tool_seen = True
                        elif kind is Finish:
                            finish = event  # type: ignore[assignment]
                        yield event
            except AppError as exc:
                if events:
                    self.llm_fallbacks.note_failure(exc)
                    yield StreamInterrupted(
                        "".join(shown),
                        describe(exc),
                        exc.error_type.value,
                        finish_reason="error" if exc.details.get("in_stream") else "",
                        reasoning="".join(reasoning),
                    )
                    return
                if "tools" in request and prompt_tools.rejects_tools(exc.status_code, exc.message):
                    request = self._switch_to_prompt_tools(request, tools or ())
                    yield Notice(
                        "prompt_tools",
                        "the LLM endpoint does not accept tools; they are described in the prompt from now on",
                    )
                    continue
                adapted = self._learn_refusal(exc, request)
                if adapted is not None:
                    request = adapted
                    continue
                async for event in self._fallback_events(exc, prompt_key(request), use_fallback):
                    yield event
                return
            break
        self.llm_fallbacks.note_success()
        if finish is not None and finish.reason == "stop" and not tool_seen and shown:
            self.fallbacks.remember(SERVICE, prompt_key(request), "".join(shown))

    def _batches(self, request: dict[str, Any], names: list[str]) -> AsyncIterator[list[StreamEvent]]:
        if self.streams:
            return self.guard.stream(lambda: self._stream_once(request, names))
        return self._whole_reply(request, names)

    async def _whole_reply(self, request: dict[str, Any], names: list[str]) -> AsyncIterator[list[StreamEvent]]:
        """One guarded non-streaming call, as one batch of stream events."""
        yield await self.guard.call(lambda: self._reply_once(request, names))

    async def _fallback_events(
        self, error: AppError, key: str | None, use_fallback: bool
    ) -> AsyncIterator[StreamEvent]:
        self.llm_fallbacks.note_failure(error)
        if not use_fallback or not is_outage(error):
            raise error
        outcome = await self.fallbacks.resolve(SERVICE, error, key)
        details = {"endpoint": self.endpoint, **self.llm_fallbacks.status()}
        yield FallbackReply(str(outcome.value), outcome.source, describe(error), outcome.stale, details)
        yield Finish("fallback", "")

    async def _stream_once(self, request: dict[str, Any], tool_names: list[str]) -> AsyncIterator[list[StreamEvent]]:
        """One HTTP attempt: open the SSE stream, turn its chunks into batches of events, always close it.

        A JSON answer to the stream request (a server that does not stream) is taken as the
        whole reply, one batch; with ``stream = "auto"`` later calls then do not ask for a stream.
        A body not labelled ``text/event-stream`` is told apart by its first byte, not its label:
        gateways send a JSON reply as ``text/plain`` or with no type, and SSE as ``application/json``.
        """
        body = json.dumps(
            {**request, **self._stream_extra},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        if self._http.cookies:  # a gateway's session cookie: let httpx merge the jar in
            outgoing = self._http.build_request(
                "POST", self._chat_url, content=body, headers=self._stream_headers, timeout=self._timeout
            )
        else:
            outgoing = httpx.Request(
                "POST", self._chat_target, content=body, headers=self._chat_headers, extensions=self._chat_extensions
            )
        try:
            response = await self._http.send(outgoing, stream=True)
        except Exception as exc:
            raise translate(exc, api_key_env=self._api_key_env) from exc
        state = _StreamState(model=request["model"])
        assembler = ToolCallAssembler()
        text_out = _TextGate(state, tool_names if "tools" not in request else None)
        decoder = SSEDecoder()
        try:
            if response.status_code >= 400:
                raise await self._status_error(response)
            chunks = response.aiter_bytes()
            if "event-stream" not in response.headers.get("content-type", ""):
                # Not labelled SSE (application/json, text/plain, none): the body decides. A
                # whole JSON reply is the answer; SSE under another label is read as SSE.
                head = b""
                async for piece in chunks:
                    head += piece
                    if head.strip():
                        break
                if head.lstrip()[:1] in (b"{", b"["):
                    rest = [piece async for piece in chunks]
                    yield self._json_instead_of_stream(b"".join([head, *rest]), request, tool_names)
                    return
                chunks = _prefixed(head, chunks)
            # Until the first event, a chunk is parsed only as far as that event: the rest
            # (a fast endpoint's whole reply may come in one read) waits for ``resume``.
            kept: list[bytes] = []
            first = True

            def feed(raw: bytes, out: list[StreamEvent]) -> bool:
                nonlocal first
                payloads = decoder.feed(raw)
                if kept:
                    payloads = kept + payloads
                    kept.clear()
                for index, payload in enumerate(payloads):
                    if payload == _DONE:
                        state.done = True
                        return True
                    self._apply_chunk(payload, state, assembler, text_out, out)
                    if first and out:
                        first = False
                        kept.extend(payloads[index + 1 :])
                        return False
                return False

            def resume(out: list[StreamEvent]) -> bool:
                return feed(b"", out) if kept else False

            async def finish(out: list[StreamEvent], completed: bool) -> None:
                if completed:
                    await _drain(chunks)
                    return
                for payload in decoder.flush():  # a server that ended without the last blank line
                    if payload == _DONE:
                        state.done = True
                    else:
                        self._apply_chunk(payload, state, assembler, text_out, out)

            reader = ReadAhead(chunks, feed, finish, resume=resume).start()
            try:
                while (batch := await reader.next_batch()) is not None:
                    yield batch
            finally:
                await reader.aclose()
        except AppError:
            raise
        except Exception as exc:
            raise translate(exc, api_key_env=self._api_key_env) from exc
        finally:
            await response.aclose()
        if not state.done and state.finish_reason is None:
            raise ExternalServiceError("the LLM stream ended before the reply was complete", service=SERVICE)
        if state.finish_reason == "error":
            raise ExternalServiceError(
                "the LLM endpoint reported an error in the middle of the reply (finish_reason error)",
                service=SERVICE,
                details={"in_stream": True},
            )
        last: list[StreamEvent] = []
        text_out.end(last)
        last.extend(self._finish_events(request, state, assembler, text_out.held_text(), tool_names))
        yield last

    def _json_instead_of_stream(
        self, content: bytes, request: Mapping[str, Any], tool_names: list[str]
    ) -> list[StreamEvent]:
        events = self._reply_events(_json_body(content), request, tool_names)
        if self._stream_mode == "auto" and self.streams:
            self.streams = False
            events.insert(
                0,
                Notice(
                    "no_stream",
                    "the LLM endpoint answers without streaming; replies are requested whole from now on",
                ),
            )
        return events

    async def _status_error(self, response: httpx.Response) -> AppError:
        await response.aread()
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            body = response.text
        return error_for_response(response.status_code, body, dict(response.headers), api_key_env=self._api_key_env)

    def _apply_chunk(
        self,
        payload: bytes,
        state: _StreamState,
        assembler: ToolCallAssembler,
        text_out: _TextGate,
        batch: list[StreamEvent],
    ) -> None:
        """Fold one SSE chunk into the state; its text goes through ``text_out`` into ``batch``.

        ``delta.content`` may be a string, null, or a list of typed blocks; reasoning comes as
        ``delta.reasoning_content`` or ``delta.reasoning``; an ``error`` object in the chunk (a
        provider failing mid-stream, in a 200 response) raises, after what came before it.
        """
        try:
            data = json.loads(payload)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise ExternalServiceError(
                f"the LLM endpoint sent a malformed stream chunk ({reason})",
                service=SERVICE,
                details={"chunk": payload[:200].decode(errors="replace")},
            ) from exc
        if type(data) is not dict:
            raise ExternalServiceError("the LLM endpoint sent a stream chunk that is not an object", service=SERVICE)
        if data.get("error"):
            status, body = _chunk_error(data["error"])
            error = error_for_response(status, body, None, api_key_env=self._api_key_env)
            error.details["in_stream"] = True
            raise error
        model = data.get("model")
        if model:
            state.model = model
        usage = data.get("usage")
        if usage:
            state.usage = _usage_of(usage)
        for choice in data.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if len(delta) == 1 and type(content) is str:
                    # Nearly every chunk: {"content": "..."}; nothing else to look for.
                    if content:
                        text_out.add(content, batch)
                else:
                    self._apply_delta(delta, content, state, assembler, text_out, batch)
            reason = choice.get("finish_reason")
            if reason:
                state.finish_reason = finish_reason_of(reason)

    @staticmethod
    def _apply_delta(
        delta: dict[str, Any],
        content: object,
        state: _StreamState,
        assembler: ToolCallAssembler,
        text_out: _TextGate,
        batch: list[StreamEvent],
    ) -> None:
        """A delta with more than plain text: content blocks, reasoning, tool calls."""
        if content:
            if type(content) is str:
                text_out.add(content, batch)
            else:
                text, thought = _block_parts(content)
                if thought:
                    state.reasoning.append(thought)
                    batch.append(ReasoningDelta(thought))
                if text:
                    text_out.add(text, batch)
        refusal = delta.get("refusal")
        if refusal and type(refusal) is str:
            text_out.add(refusal, batch)  # OpenAI: the model declined; its words are the reply
        if "reasoning_content" in delta or "reasoning" in delta:
            thought = _reasoning_of(delta)
            if thought:
                state.reasoning.append(thought)
                batch.append(ReasoningDelta(thought))
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            for tc in tool_calls:
                assembler.feed(tc)

    def _finish_events(
        self,
        request: Mapping[str, Any],
        state: _StreamState,
        assembler: ToolCallAssembler,
        held: str | None,
        tool_names: list[str],
    ) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        reason = state.finish_reason or "stop"
        completion_text = "".join(state.text)
        tool_texts: list[str] = []
        if held is not None:
            calls, words = prompt_tools.split_tool_requests(held, tool_names)
            if calls:
                if words:
                    events.append(TextDelta(words))
                events.extend(parse_arguments(c) for c in with_unique_ids(calls))
                reason = "tool_calls"
            else:
                events.append(TextDelta(held))
            completion_text += held
        for event in assembler.finish():
            events.append(event)
            tool_texts.append(event.call.name + event.call.arguments)
        if reason == "stop" and tool_texts:
            reason = "tool_calls"  # some servers (Ollama) say stop after tool calls
        reasoning = "".join(state.reasoning)
        if state.usage is not None:
            usage = self._with_reasoning(state.usage, reasoning)
        else:
            usage = self._estimate_usage(request, completion_text + "".join(tool_texts), reasoning)
        events.append(usage)
        events.append(Finish(reason, state.model))
        return events

    def _reply_events(self, data: object, request: Mapping[str, Any], tool_names: list[str]) -> list[StreamEvent]:
        """The events of a whole ``chat.completion`` body, as a stream would have given them.

        Raises:
            AppError: the body is an error object, or has no choices.
        """
        if not isinstance(data, dict):
            raise ExternalServiceError("the LLM endpoint sent a reply that is not a JSON object", service=SERVICE)
        if data.get("error"):
            status, body = _chunk_error(data["error"])
            raise error_for_response(status, body, None, api_key_env=self._api_key_env)
        choices = data.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ExternalServiceError("the LLM endpoint sent a reply without choices", service=SERVICE)
        message = choices[0].get("message") or {}
        content = message.get("content")
        if content is None or isinstance(content, str):
            text, thought = content or "", ""
        else:
            text, thought = _block_parts(content)
        refusal = message.get("refusal")
        if not text and isinstance(refusal, str):
            text = refusal  # OpenAI: the model declined; its words are the reply
        reasoning = _reasoning_of(message) or thought
        state = _StreamState(
            model=str(data.get("model") or request["model"]),
            finish_reason=finish_reason_of(choices[0].get("finish_reason")),
        )
        events: list[StreamEvent] = []
        if reasoning:
            state.reasoning.append(reasoning)
            events.append(ReasoningDelta(reasoning))
        assembler = ToolCallAssembler()
        for index, tc in enumerate(message.get("tool_calls") or ()):
            if isinstance(tc, dict):
                assembler.feed({"index": index, **tc})
        text_out = _TextGate(state, tool_names if "tools" not in request and not assembler else None)
        if text:
            text_out.add(text, events)
        text_out.end(events)
        usage = data.get("usage")
        if isinstance(usage, dict) and usage:
            state.usage = _usage_of(usage)
        if state.finish_reason == "error":
            raise ExternalServiceError("the LLM endpoint reported an error (finish_reason error)", service=SERVICE)
        events.extend(self._finish_events(request, state, assembler, text_out.held_text(), tool_names))
        return events

    # ------------------------------------------------------------ whole replies

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        use_fallback: bool = True,
    ) -> Completion:
        """One non-streaming reply, with the same fallbacks, content forms and tool handling as
        :meth:`stream_chat` (an endpoint that rejects ``tools`` gets them in the prompt).

        Raises:
            AppError: the call failed and no fallback applies (not an outage, or
                ``use_fallback=False``).
        """
        key: str | None = None
        try:
            request = await self._request(messages, tools, model, temperature, max_tokens)
            key = prompt_key(request)
            names = self._tool_names(tools)
            while True:
                try:
                    events = await self.guard.call(functools.partial(self._reply_once, request, names))
                    break
                except AppError as exc:
                    if "tools" in request and prompt_tools.rejects_tools(exc.status_code, exc.message):
                        request = self._switch_to_prompt_tools(request, tools or ())
                    else:
                        adapted = self._learn_refusal(exc, request)
                        if adapted is None:
                            raise
                        request = adapted
                    key = prompt_key(request)
        except AppError as exc:
            self.llm_fallbacks.note_failure(exc)
            if not use_fallback or not is_outage(exc):
                raise
            outcome = await self.fallbacks.resolve(SERVICE, exc, key)
            return Completion(str(outcome.value), finish_reason="fallback", source=outcome.source, error=describe(exc))
        self.llm_fallbacks.note_success()
        result = _completion_of(events)
        if result.finish_reason == "stop" and not result.tool_calls and result.text:
            self.fallbacks.remember(SERVICE, key, result.text)
        return result

    async def _reply_once(self, request: dict[str, Any], tool_names: list[str]) -> list[StreamEvent]:
        """One non-streaming HTTP attempt, as the events of its reply (an endpoint that streams
        anyway, SSE in answer to a plain request, is read as the stream it sent)."""
        try:
            raw = await self._openai.chat.completions.with_raw_response.create(**request)
            content = raw.content
        except Exception as exc:
            raise translate(exc, api_key_env=self._api_key_env) from exc
        if content.lstrip().startswith(_SSE_FIELDS):
            return self._sse_body_events(content, request, tool_names)
        return self._reply_events(_json_body(content), request, tool_names)

    def _sse_body_events(self, content: bytes, request: dict[str, Any], tool_names: list[str]) -> list[StreamEvent]:
        """The events of a whole SSE body read at once.

        Raises:
            AppError: a malformed chunk, an error in the stream, or a stream that ended unfinished.
        """
        state = _StreamState(model=request["model"])
        assembler = ToolCallAssembler()
        text_out = _TextGate(state, tool_names if "tools" not in request else None)
        events: list[StreamEvent] = []
        decoder = SSEDecoder()
        for payload in [*decoder.feed(content), *decoder.flush()]:
            if payload == _DONE:
                state.done = True
                break
            self._apply_chunk(payload, state, assembler, text_out, events)
        if not state.done and state.finish_reason is None:
            raise ExternalServiceError("the LLM stream ended before the reply was complete", service=SERVICE)
        if state.finish_reason == "error":
            raise ExternalServiceError("the LLM endpoint reported an error (finish_reason error)", service=SERVICE)
        text_out.end(events)
        events.extend(self._finish_events(request, state, assembler, text_out.held_text(), tool_names))
        return events

    # ------------------------------------------------------------ other endpoints

    async def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """Embedding vectors of ``texts`` from ``POST /embeddings``, in order (guarded like every LLM call).

        The response's items are sorted by their ``index`` (the OpenAI embeddings format).

        Raises:
            AppError: the request failed (translated by :func:`runtime.llm.errors.translate`).
        """
        if not texts:
            return []
        use = model or await self.model()

        async def once() -> list[list[float]]:
            try:
                result = await self._openai.embeddings.create(model=use, input=list(texts), encoding_format="float")
            except Exception as exc:
                raise translate(exc, api_key_env=self._api_key_env) from exc
            ordered = sorted(result.data, key=lambda d: d.index)
            return [list(d.embedding) for d in ordered]

        return await self.guard.call(once)

    async def list_models(self) -> list[str]:
        """Ids of the models the endpoint offers (``GET /models``), guarded.

        Raises:
            AppError: the request failed.
        """

        async def once() -> list[str]:
            return await self._fetch_models()

        return await self.guard.call(once)

    async def _fetch_models(self) -> list[str]:
        try:
            raw = await self._openai.models.with_raw_response.list()
            content = raw.content
        except Exception as exc:
            raise translate(exc, api_key_env=self._api_key_env) from exc
        return _model_ids(content)

    async def probe(self) -> dict[str, Any]:
        """Reach the endpoint directly, bypassing the guard (for health checks).

        ``GET /models`` first; an endpoint without a usable one (404, 405 or 501, as gateways,
        llama.cpp builds and proxies answer, or a 200 that is not a model list, such as a web
        UI's HTML page) gets a one-token completion instead, so the check agrees with chat.

        Returns:
            How it answered: ``{"method": "models", "models": <count>}``, or
            ``{"method": "completion", "models_error": <why /models was not used, e.g. "HTTP 405">}``.

        Raises:
            AppError: the endpoint did not answer or refused.
        """
        try:
            models = await self._fetch_models()
            return {"method": "models", "models": len(models)}
        except AppError as exc:
            if exc.details.get("not_a_model_list"):
                why = "not a model list"
            elif exc.status_code in _NO_MODELS_STATUSES:
                why = f"HTTP {exc.status_code}"
            else:
                raise
        try:
            ping = self._without_refused(
                {"model": self._model or "default", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
            )
            await self._openai.chat.completions.create(**ping)
        except Exception as exc:
            raise translate(exc, api_key_env=self._api_key_env) from exc
        return {"method": "completion", "models_error": why}

    # ------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the HTTP client if this LLMClient created it (a given one stays open)."""
        # The SDK's close() would close the httpx client, which may belong to the caller.
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


async def _prefixed(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``first``, then the rest of a body whose start was read to tell JSON from SSE."""
    if first:
        yield first
    async for piece in rest:
        yield piece


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what is left of a finished stream so httpx returns the connection to its pool."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except TimeoutError:
        pass  # the response is closed instead; the reply itself is complete


def _model_ids(content: bytes) -> list[str]:
    """The model ids of a ``GET /models`` body: OpenAI's ``{"data": [{"id": ...}]}``, or a bare list.

    Raises:
        ExternalServiceError: the body is not such a list (an HTML page, another API's JSON);
            ``details["not_a_model_list"]`` is True.
    """
    try:
        data: object = json.loads(content)
    except ValueError:
        data = None
    items = data.get("data") if isinstance(data, dict) else data
    if isinstance(items, list):
        ids = [item.get("id") if isinstance(item, dict) else item for item in items]
        if all(isinstance(i, str) for i in ids):
            return [str(i) for i in ids]
    raise ExternalServiceError(
        "the LLM endpoint's GET /models did not answer with a model list",
        service=SERVICE,
        retryable=False,
        details={"not_a_model_list": True},
    )


def _json_body(content: bytes) -> object:
    try:
        return json.loads(content)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ExternalServiceError(f"the LLM endpoint sent a malformed response ({reason})", service=SERVICE) from exc


def _completion_of(events: Sequence[StreamEvent]) -> Completion:
    """A :class:`Completion` from the events of one whole reply."""
    text: list[str] = []
    reasoning: list[str] = []
    ready: list[ToolCallReady] = []
    errors: list[ToolCallError] = []
    usage: Usage | None = None
    finish = Finish("stop")
    for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallReady):
            ready.append(event)
        elif isinstance(event, ToolCallError):
            errors.append(event)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finish):
            finish = event
    return Completion(
        text="".join(text),
        tool_calls=tuple(ready),
        tool_errors=tuple(errors),
        usage=usage,
        finish_reason=finish.reason,
        model=finish.model,
        reasoning="".join(reasoning),
    )
