"""What the demo server accepts: the OpenAI request bodies as pydantic models, and the errors.

A request body is parsed once with pydantic-core's JSON parser (which refuses nesting deeper
than about 200 levels instead of recursing without bound) and validated once against strict
models: ``"stream": "yes"`` and ``"temperature": "hot"`` are wrong types here, as they are on
the OpenAI API. Every failure becomes an :class:`ApiError` whose :meth:`ApiError.body` is
OpenAI's error object ``{"error": {"message", "type", "param", "code"}}``, with ``param``
naming the offending parameter the way OpenAI does (``messages[0].role``) and the messages
and codes worded after OpenAI's own (``missing_required_parameter``, ``invalid_type``,
``invalid_value``, ``empty_array``, ``integer_below_min_value``, ...).

Unknown top-level parameters are ignored rather than refused (vLLM and Ollama do the same;
OpenAI refuses them): clients send vendor extras such as ``top_k`` or ``keep_alive``. OpenAI's
own parameters that do not change the demo's answer (``logit_bias``, ``metadata``, ``store``,
``user``, ``seed`` ...) are still type-checked.

The parsed models keep the request's own message and tool dicts (``raw_messages``,
``raw_tools``) so the demo model reads exactly what arrived.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from runtime.core.errors import AppError

#: OpenAI's pattern for function (tool) names.
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
#: Most choices one request may ask for (OpenAI's limit for ``n``).
MAX_CHOICES = 128
#: Most stop sequences (OpenAI's limit).
MAX_STOP = 4
#: Most inputs one embeddings request may carry (OpenAI's limit).
MAX_EMBED_INPUTS = 2048
#: Largest token id an embeddings request may send (a 32-bit signed id; real vocabularies are smaller).
MAX_TOKEN_ID = 2**31 - 1
#: The range of the API's integer parameters (64-bit signed, as OpenAI stores them).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ApiError(AppError):
    """A request the server answers with an OpenAI-shaped error instead of a completion.

    Args:
        status: the HTTP status (400, 404, 405, 413, ...).
        message: the ``error.message`` text.
        err_type: ``error.type`` (OpenAI's: ``invalid_request_error``, ``server_error``, ...).
        param: ``error.param``, the offending parameter (``messages[0].role``) or None.
        code: ``error.code`` (``model_not_found``, ``invalid_type``, ...) or None.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        err_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status)
        self.err_type = err_type
        self.param = param
        self.code = code

    def body(self) -> dict[str, dict[str, str | None]]:
        """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.err_type, "param": self.param, "code": self.code}}


def model_not_found(model: str) -> ApiError:
    """The 404 OpenAI answers for a model that does not exist (``code: model_not_found``)."""
    return ApiError(404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found")


# ---------------------------------------------------------------- models


class _Strict(BaseModel):
    """Strict types (no "yes" for true, no "1" for 1), no NaN or infinity, extra keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


def _json_kind(value: object) -> str:
    """The tag of a string-or-array-or-object union member: ``str``, ``list`` or ``dict``."""
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "dict"


def _kind(value: object) -> str:
    """OpenAI's words for a JSON value's type: "a string", "an integer", "an object", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _one_of(value: object, allowed: tuple[type, ...], expected: str) -> object:
    """``value`` unchanged if it is one of ``allowed``, else an ``invalid_type`` error.

    Used before union fields so a wrong type is one error at the field itself, not one error
    per member of the union.
    """
    if value is None or (isinstance(value, allowed) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError(
        "invalid_type", "expected {expected}, but got {got} instead", {"expected": expected, "got": _kind(value)}
    )


def _missing(field: str) -> PydanticCustomError:
    """A required-by-role field is absent; ``field`` is appended to the error's location."""
    return PydanticCustomError("missing_required_parameter", "missing {field}", {"field": field})


class ImageUrl(_Strict):
    """The ``image_url`` of an image block: ``{"url": ..., "detail": "auto" | "low" | "high"}``."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(_Strict):
    """One block of a message's list-form content (``{"type": "text", "text": ...}``, images, ...).

    Each type needs the field of its own name, as OpenAI requires: ``text`` a string,
    ``image_url`` an object with ``url``, ``input_audio`` and ``file`` objects, ``refusal`` a
    string. The demo model reads only the text.
    """

    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: str | None = None
    image_url: ImageUrl | None = None
    input_audio: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _payload_present(self) -> ContentPart:
        if getattr(self, self.type) is None:
            raise _missing(self.type)
        return self


# Tagged by the JSON kind so a bad block is one error at its own place (messages[0].content[1].type),
# not one error per union member.
_Content = Annotated[
    Annotated[str, Tag("str")] | Annotated[list[ContentPart], Field(min_length=1), Tag("list")],
    Discriminator(_json_kind),
]


class ToolCallFunction(_Strict):
    """The ``function`` of a tool call in an assistant message: name and JSON-text arguments."""

    name: str
    arguments: str


class ToolCallItem(_Strict):
    """One ``tool_calls`` item of an assistant message in the request history."""

    id: str
    type: Literal["function"]
    function: ToolCallFunction


class Message(_Strict):
    """One chat message; which fields are required depends on ``role`` (OpenAI's rules).

    ``system``, ``developer``, ``user``, ``tool`` and ``function`` need ``content``; an
    ``assistant`` message needs ``content`` or ``tool_calls``; a ``tool`` message needs
    ``tool_call_id``, a (deprecated) ``function`` message its ``name``. Content is a string or a list of content blocks.
    """

    role: Role
    content: _Content | None = None
    name: str | None = None
    tool_calls: list[ToolCallItem] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _content_type(cls, value: object) -> object:
        return _one_of(value, (str, list), "one of a string or an array of objects")

    @model_validator(mode="after")
    def _role_fields(self) -> Message:
        if self.role == "assistant":
            if self.content is None and not self.tool_calls and self.refusal is None:
                raise _missing("content")
        elif self.content is None:
            raise _missing("content")
        if self.role == "tool" and self.tool_call_id is None:
            raise _missing("tool_call_id")
        if self.role == "function" and self.name is None:
            raise _missing("name")
        return self


class FunctionDef(_Strict):
    """A tool's function: a name OpenAI accepts, a description, a JSON Schema of parameters."""

    name: Annotated[str, Field(pattern=FUNCTION_NAME)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(_Strict):
    """One offered tool: ``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Strict):
    """The function named by a forced ``tool_choice``."""

    name: str


class NamedToolChoice(_Strict):
    """``tool_choice: {"type": "function", "function": {"name": ...}}``: call exactly this tool."""

    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Strict):
    """``stream_options``; ``include_usage`` adds a usage-only final chunk to the stream."""

    include_usage: bool | None = None


class ResponseFormat(_Strict):
    """``response_format``: accepted and validated; the demo model's words do not change."""

    type: Literal["text", "json_object", "json_schema"]


ToolChoiceMode = Literal["none", "auto", "required"]
_ToolChoice = Annotated[
    Annotated[ToolChoiceMode, Tag("str")] | Annotated[NamedToolChoice, Tag("dict")], Discriminator(_json_kind)
]
_Stop = Annotated[
    Annotated[str, Tag("str")] | Annotated[list[str], Field(max_length=MAX_STOP), Tag("list")],
    Discriminator(_json_kind),
]


class ChatRequest(_Strict):
    """A ``POST /v1/chat/completions`` body, with OpenAI's types and ranges.

    :attr:`raw_messages` and :attr:`raw_tools` are the request's own dicts (kept by
    :func:`parse_chat_request`), for the demo model to read as they arrived.
    """

    model: str
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    stop: _Stop | None = None
    seed: Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: Annotated[list[ToolDef], Field(min_length=1)] | None = None
    tool_choice: _ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    _raw_messages: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _raw_tools: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @field_validator("temperature", "top_p", "presence_penalty", "frequency_penalty", mode="before")
    @classmethod
    def _integral_number(cls, value: object) -> object:
        # A whole number is a number here (OpenAI takes ``"temperature": 1``), however large:
        # pydantic's strict float refused integers past 64 bits as "not a decimal".
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                return sys.float_info.max if value > 0 else -sys.float_info.max
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_type(cls, value: object) -> object:
        return _one_of(value, (str, list), "one of a string or an array of strings")

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_type(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("none", "auto", "required"):
            raise PydanticCustomError(
                "invalid_value",
                "Invalid value: '{value}'. Supported values are: 'none', 'auto', and 'required'.",
                {"value": value},
            )
        return _one_of(value, (str, dict), "one of a string or an object")

    @model_validator(mode="after")
    def _consistent(self) -> ChatRequest:
        if self.stream_options is not None and not self.stream:
            raise PydanticCustomError(
                "invalid_value",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                {"field": "stream_options"},
            )
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise PydanticCustomError(
                "invalid_value", "'tool_choice' is only allowed when 'tools' are specified.", {"field": "tool_choice"}
            )
        if isinstance(self.tool_choice, NamedToolChoice):
            wanted = self.tool_choice.function.name
            if wanted not in {t.function.name for t in self.tools or ()}:
                raise PydanticCustomError(
                    "invalid_value",
                    "Invalid value for 'tool_choice': function '{name}' is not among the offered tools.",
                    {"name": wanted, "field": "tool_choice"},
                )
        return self

    @property
    def raw_messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` exactly as sent (validated: a list of message objects)."""
        return self._raw_messages

    @property
    def raw_tools(self) -> list[dict[str, Any]]:
        """The request's ``tools`` exactly as sent, or an empty list."""
        return self._raw_tools

    @property
    def limit(self) -> int | None:
        """The tightest of ``max_tokens`` and ``max_completion_tokens``, or None for no limit."""
        given = [v for v in (self.max_tokens, self.max_completion_tokens) if v is not None]
        return min(given) if given else None

    @property
    def stops(self) -> tuple[str, ...]:
        """The stop sequences, as a tuple (empty strings dropped: they would stop at once)."""
        if self.stop is None:
            return ()
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s)

    @property
    def include_usage(self) -> bool:
        """Whether ``stream_options.include_usage`` asked for a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


def check_tool_messages(messages: Sequence[Message]) -> None:
    """Refuse a history whose tool calls and tool results do not pair up, as OpenAI does.

    Each ``tool`` message must answer a call of the assistant message just before its run of
    tool messages, and every call of an assistant message must be answered before the next
    message of another role (or the end). OpenAI's messages are kept word for word (its
    "preceeding" included); ``param`` names the message as elsewhere (``messages[2].role``).

    Raises:
        ApiError: 400 ``invalid_request_error`` naming the first message that breaks the rule.
    """
    calls: set[str] = set()  # the ids of the assistant message the current tool run answers
    pending: set[str] = set()
    caller = -1
    for index, message in enumerate(messages):
        if message.role == "tool":
            if caller < 0:
                raise ApiError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages[{index}].role",
                )
            if message.tool_call_id not in calls:
                raise ApiError(
                    400,
                    f"Invalid parameter: 'tool_call_id' of '{message.tool_call_id}' not found in 'tool_calls' "
                    "of previous message.",
                    param=f"messages[{index}].tool_call_id",
                )
            pending.discard(message.tool_call_id or "")
            continue
        _unanswered(pending, caller)
        calls = {call.id for call in message.tool_calls or ()} if message.role == "assistant" else set()
        pending, caller = set(calls), (index if calls else -1)
    _unanswered(pending, caller)


def _unanswered(pending: set[str], caller: int) -> None:
    if pending:
        raise ApiError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(sorted(pending))}",
            param=f"messages[{caller}].role",
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_input(text: str, where: str) -> None:
    """OpenAI refuses an empty string to embed."""
    if not text:
        raise PydanticCustomError(
            "invalid_value",
            "Invalid '{where}': empty string. Expected a string with minimum length 1.",
            {"where": where},
        )


def _token_ids(ids: list[Any], where: str) -> None:
    """A token array must hold at least one id, each a token of the vocabulary's range."""
    if not ids:
        raise PydanticCustomError(
            "empty_array",
            "Invalid '{where}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            {"where": where},
        )
    bad = next((i for i in ids if not 0 <= i <= MAX_TOKEN_ID), None)
    if bad is not None:
        raise PydanticCustomError(
            "invalid_value",
            "Invalid '{where}': token id {bad} is out of range. Expected token ids from 0 to {top}.",
            {"where": where, "bad": bad, "top": MAX_TOKEN_ID},
        )


class EmbeddingRequest(_Strict):
    """A ``POST /v1/embeddings`` body: text, texts, or token ids (one list or a list of lists)."""

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input_shape(cls, value: object) -> object:
        if isinstance(value, str):
            _text_input(value, "input")
            return value
        if not isinstance(value, list):
            return _one_of(value, (str,), "a string or an array of strings")
        if not value:
            raise PydanticCustomError(
                "empty_array",
                "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            )
        if len(value) > MAX_EMBED_INPUTS:
            raise PydanticCustomError(
                "array_above_max_length",
                "Invalid 'input': array too long. Expected an array with maximum length {limit}, but got an array "
                "with length {length} instead.",
                {"limit": MAX_EMBED_INPUTS, "length": len(value)},
            )
        if all(isinstance(v, str) for v in value):
            for index, text in enumerate(value):
                _text_input(text, f"input[{index}]")
        elif all(_is_int(v) for v in value):
            _token_ids(value, "input")
        elif all(isinstance(v, list) and all(_is_int(i) for i in v) for v in value):
            for index, ids in enumerate(value):
                _token_ids(ids, f"input[{index}]")
        else:
            raise PydanticCustomError(
                "invalid_type",
                "expected a string, an array of strings, or an array of token arrays",
                {"expected": "a string or an array of strings", "got": "an array of mixed values"},
            )
        return value

    @property
    def texts(self) -> list[str]:
        """The inputs as texts (token ids become their decimal spelling, space separated)."""
        raw = self.input
        if isinstance(raw, str):
            return [raw]
        if raw and isinstance(raw[0], int):
            return [" ".join(str(i) for i in raw)]
        return [v if isinstance(v, str) else " ".join(str(i) for i in v) for v in raw]  # type: ignore[union-attr]


# ---------------------------------------------------------------- parsing and errors


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a decimal",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
# Loc segments pydantic adds for the members of a union or a wrapped validator, not field names.
_DESCRIPTOR = re.compile(r"[\[\-]|^(str|int|float|bool|list|dict|none|literal)$|^[A-Z]")


def _param(loc: tuple[int | str, ...], extra: object = None) -> str | None:
    """OpenAI's spelling of a location: ``("messages", 0, "role")`` -> ``messages[0].role``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _DESCRIPTOR.search(part):
            out += f".{part}" if out else part
    if isinstance(extra, str) and extra:
        out = f"{out}.{extra}" if out else extra
    return out or None


def _bound(ctx: dict[str, Any]) -> tuple[str, str, str, object] | None:
    """(words, code part, comparison, limit) of a range constraint in a pydantic error's ctx."""
    for key, words, code, symbol in (
        ("ge", "below minimum", "below_min", ">="),
        ("gt", "below minimum", "below_min", ">"),
        ("le", "above maximum", "above_max", "<="),
        ("lt", "above maximum", "above_max", "<"),
    ):
        if key in ctx:
            return words, code, symbol, ctx[key]
    return None


def error_from_pydantic(error: ErrorDetails) -> ApiError:
    """One pydantic error as OpenAI words it: 400 ``invalid_request_error`` naming ``param``."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    given = error.get("input")
    param = _param(tuple(error["loc"]), ctx.get("field"))
    name = param or "body"
    if kind in ("missing", "missing_required_parameter"):
        return ApiError(400, f"Missing required parameter: '{name}'.", param=param, code="missing_required_parameter")
    if kind in _TYPE_NAMES or kind == "invalid_type":
        expected = ctx.get("expected") if kind == "invalid_type" else _TYPE_NAMES[kind]
        got = ctx.get("got") or _kind(given)
        message = f"Invalid type for '{name}': expected {expected}, but got {got} instead."
        return ApiError(400, message, param=param, code="invalid_type")
    if kind in ("invalid_value", "empty_array", "array_above_max_length"):  # worded whole where raised
        return ApiError(400, error["msg"], param=param, code=kind)
    if kind == "literal_error" and not isinstance(given, str):  # every literal here is a string
        message = f"Invalid type for '{name}': expected a string, but got {_kind(given)} instead."
        return ApiError(400, message, param=param, code="invalid_type")
    if kind == "literal_error":
        supported = ctx.get("expected", "")
        return ApiError(
            400, f"Invalid value: {given!r}. Supported values are: {supported}.", param=param, code="invalid_value"
        )
    if kind == "too_short" and isinstance(given, list) and not given:
        message = (
            f"Invalid '{name}': empty array. Expected an array with minimum length 1, but got an empty array instead."
        )
        return ApiError(400, message, param=param, code="empty_array")
    if kind == "too_long" and isinstance(given, list):
        message = (
            f"Invalid '{name}': array too long. Expected an array with maximum length {ctx.get('max_length')}, "
            f"but got an array with length {len(given)} instead."
        )
        return ApiError(400, message, param=param, code="array_above_max_length")
    bound = _bound(ctx)
    if bound is not None and isinstance(given, int | float) and not isinstance(given, bool):
        words, code_part, symbol, limit = bound
        number = "decimal" if isinstance(limit, float) or isinstance(given, float) else "integer"
        shown = f"{limit:g}" if isinstance(limit, float) else str(limit)
        message = (
            f"Invalid '{name}': {number} {words} value. Expected a value {symbol} {shown}, but got {given} instead."
        )
        return ApiError(400, message, param=param, code=f"{number}_{code_part}_value")
    if kind == "string_pattern_mismatch":
        message = (
            f"Invalid '{name}': string does not match pattern. "
            f"Expected a string that matches the pattern {ctx.get('pattern')!r}."
        )
        return ApiError(400, message, param=param, code="invalid_value")
    if kind in ("finite_number", "float_parsing", "int_parsing"):
        return ApiError(400, f"Invalid '{name}': expected a finite number.", param=param, code="invalid_value")
    return ApiError(400, f"Invalid '{name}': {error['msg']}", param=param, code="invalid_value")


def _json_object(body: bytes) -> dict[str, Any]:
    """``body`` parsed as a JSON object; nesting deeper than pydantic-core's limit is refused.

    Raises:
        ApiError: 400 when the body is not JSON, is nested too deeply, or is not an object.
    """
    try:
        data = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise ApiError(
            400,
            f"We could not parse the JSON body of your request ({exc}). The API expects a JSON object.",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, f"The request body must be a JSON object, not {_kind(data)}.")
    return data


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object from a request body (the admin API's bodies use this too).

    Raises:
        ApiError: 400 for a body that is not a JSON object (or nests too deeply).
    """
    return _json_object(body)


def parse_chat_request(body: bytes) -> ChatRequest:
    """A validated chat request from the raw body.

    Raises:
        ApiError: 400 naming the first offending parameter, as OpenAI reports one.
    """
    data = _json_object(body)
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise error_from_pydantic(exc.errors(include_url=False)[0]) from None
    # Validated: the messages and tools are lists of objects of the right shapes.
    request._raw_messages = data["messages"]
    request._raw_tools = data.get("tools") or []
    return request


def parse_embedding_request(body: bytes) -> EmbeddingRequest:
    """A validated embeddings request from the raw body.

    Raises:
        ApiError: 400 naming the first offending parameter.
    """
    data = _json_object(body)
    try:
        return EmbeddingRequest.model_validate(data)
    except ValidationError as exc:
        raise error_from_pydantic(exc.errors(include_url=False)[0]) from None
