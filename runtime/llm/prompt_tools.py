"""Tools described in the prompt: the one owner of tool calling for endpoints without ``tools``.

When a preset (or ``[llm].supports_tools = false``) says the endpoint cannot take a ``tools``
parameter, or the endpoint rejects it at run time (Ollama's "... does not support tools",
llama.cpp's "tools param requires --jinja", vLLM's "--enable-auto-tool-choice"), the client
sends the request through :func:`with_tools_in_prompt` instead:

* the tool list (:func:`describe_tools`) and :data:`INSTRUCTION`, which says how to ask for a
  tool, are added to the first system message;
* earlier tool calls become the assistant's JSON request and tool results become a user
  message ``[tool result NAME]: ...`` (results of one step in one message, so roles still
  alternate, as llama.cpp's chat templates require), since such an endpoint rejects the
  ``tool`` role.

The reply is parsed back by :func:`parse_tool_reply` (a bare JSON object, one in a fenced
block, or ``{"tool_calls": [...]}``) into ordinary tool calls, which the agent runs and
answers like native ones. Local models often wrap the request in words ("I'll use the
calculator: ```json {...}```", a trailing explanation) or in Hermes/Qwen ``<tool_call>`` tags:
:func:`split_tool_requests` finds such embedded requests (they must name a listed tool) and
keeps the words as the reply's text. While a reply streams, :class:`ToolRequestGate` shows
the words at once and holds back only what may be a request (from a fence, a tag or a JSON
object's start), so a request is never shown as the answer. The context window counts the
text this module writes (the runtime hands it :func:`describe_tools`), so the prompt budget holds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.core.messages import ToolCall

_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

INSTRUCTION = (
    "To use a tool, reply with only one JSON object and nothing else: "
    '{"tool": "<tool name>", "arguments": {...}}. '
    'For several tools at once reply {"tool_calls": [{"tool": ..., "arguments": {...}}, ...]}. '
    "Each tool's result comes back in a message that starts with [tool result NAME]. "
    "Otherwise answer normally."
)

#: How endpoints say they cannot take ``tools`` (Ollama, llama.cpp without --jinja, vLLM
#: without --enable-auto-tool-choice, gateways that validate the field).
_REJECTS_TOOLS_RE = re.compile(
    r"does not support tools|(?:tools?|function calling|tool calling|tool_choice)\W+(?:\w+\W+)?(?:is |are )?"
    r"not supported|tools? param requires|enable-auto-tool-choice|--jinja|unsupported (?:parameter|field)\W+tools"
    r"|unrecognized request argument\W+tools|extra inputs are not permitted.*tools|tools.*extra inputs",
    re.IGNORECASE | re.DOTALL,
)


def rejects_tools(status: int | None, message: str) -> bool:
    """Whether an error answer (``status``, the server's words) says the endpoint cannot take
    the ``tools`` parameter, so the request should be resent with the tools in the prompt."""
    return status in (400, 404, 422, 500, 501) and bool(_REJECTS_TOOLS_RE.search(message))


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = tool.get("function")
    return fn if isinstance(fn, dict) else tool


def describe_tools(tools: Sequence[Mapping[str, Any]]) -> str:
    """The system-prompt text describing ``tools``: one line per tool, then :data:`INSTRUCTION`.

    ``tools`` are chat-completions tool schemas (``{"type": "function", "function": {...}}``)
    or bare function objects.
    """
    lines = ["Available tools:"]
    for tool in tools:
        fn = _function(tool)
        line = f"- {fn.get('name')}: {fn.get('description', '')}".rstrip()
        if fn.get("parameters"):
            line += f" Parameters: {json.dumps(fn['parameters'], separators=(',', ':'))}"
        lines.append(line)
    lines.append(INSTRUCTION)
    return "\n".join(lines)


def with_tools_in_prompt(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A copy of ``messages`` whose first system message also describes ``tools``.

    Tool-role messages and assistant tool calls are rewritten as plain text (see the module
    docstring), since an endpoint without tool support would reject them.
    """
    description = describe_tools(tools)
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        if role == "tool":
            line = f"[tool result {msg.get('name') or msg.get('tool_call_id', '')}]: {_text(msg.get('content'))}"
            previous = out[-1] if out else None
            if previous is not None and previous.get("role") == "user" and previous.get("_tool_results"):
                previous["content"] += "\n" + line
            else:
                out.append({"role": "user", "content": line, "_tool_results": True})
        elif role == "assistant" and msg.get("tool_calls"):
            calls = [
                {"tool": _function(tc).get("name"), "arguments": _arguments_value(_function(tc).get("arguments"))}
                for tc in msg["tool_calls"]
            ]
            body = calls[0] if len(calls) == 1 else {"tool_calls": calls}
            content = _text(msg.get("content")).strip()
            text = json.dumps(body, ensure_ascii=False)
            out.append({"role": "assistant", "content": f"{content}\n{text}" if content else text})
        else:
            out.append(dict(msg))
    for msg in out:
        msg.pop("_tool_results", None)
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{_text(out[0].get('content'))}\n\n{description}".lstrip()
    else:
        out.insert(0, {"role": "system", "content": description})
    return out


def _text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _arguments_value(raw: object) -> object:
    """Stored arguments (JSON text) as the object the model wrote, or the text when it is not JSON."""
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw
    return raw if raw is not None else {}


def looks_like_tool_json(text: str) -> bool:
    """Whether a reply's start could be a tool request, so it must be held back, not streamed."""
    head = text.lstrip()
    return head.startswith(("{", "[", "```"))


def parse_tool_reply(text: str, tool_names: Sequence[str], *, listed_only: bool = False) -> list[ToolCall] | None:
    """The tool calls a reply asks for, or None when it is an ordinary answer.

    The reply must be exactly one JSON value (optionally in a ```json fence): an object
    ``{"tool": NAME, "arguments": {...}}``, ``{"tool_calls": [such objects]}`` or a list of
    them. ``"name"`` may stand for ``"tool"`` and ``"parameters"`` for ``"arguments"``, and
    OpenAI's own ``{"function": {"name", "arguments"}}`` item is understood. A request keyed
    ``"tool"`` is a call even to a tool not in ``tool_names`` (the runner answers "unknown
    tool", so the model can correct itself); one keyed ``"name"`` must name a listed tool,
    since an answer may well be an object with a name (``listed_only``: every call must name
    a listed tool, for a request found inside other text). Each call gets a stable id derived
    from the reply, in the chat-completions ``call_...`` style.
    """
    body = text.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body.startswith(("{", "[")):
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        listed = data.get("tool_calls")
        requests: list[Any] = listed if isinstance(listed, list) else [data]
    elif isinstance(data, list):
        requests = data
    else:
        return None
    calls: list[ToolCall] = []
    for index, req in enumerate(requests):
        if not isinstance(req, dict):
            return None
        fn = req.get("function")
        if isinstance(fn, dict):
            req = {"name": fn.get("name"), "arguments": fn.get("arguments", {})}
        name = req.get("tool")
        if not isinstance(name, str) or not name:
            name = req.get("name")
            if not isinstance(name, str) or name not in tool_names:
                return None
        elif listed_only and name not in tool_names:
            return None
        args = req.get("arguments", req.get("parameters", {}))
        if args is None:
            args = {}
        arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        call_id = "call_" + hashlib.sha1(f"{index}:{body}".encode()).hexdigest()[:16]
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls or None


# ---------------------------------------------------------------- requests inside other text

_FENCE = "```"
_TAG_OPEN = "<tool_call>"
_TAG_CLOSE = "</tool_call>"


def _opener(text: str, start: int, at_reply_start: bool) -> tuple[int, str] | None:
    """The first place at or after ``start`` where a tool request may begin, and its kind:
    ``fence``, ``tag``, ``json`` (``{`` then ``"``, or ``[`` then ``{`` at the reply's start), or
    ``partial`` (the text ends in what may become one); None when there is none."""
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "`":
            if text.startswith(_FENCE, i):
                return i, "fence"
            if _FENCE.startswith(text[i:]):
                return i, "partial"
        elif ch == "<":
            if text.startswith(_TAG_OPEN, i):
                return i, "tag"
            if _TAG_OPEN.startswith(text[i:]):
                return i, "partial"
        elif ch == "{" or (ch == "[" and at_reply_start and not text[:i].strip()):
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j == n:
                return i, "partial"
            if text[j] == ('"' if ch == "{" else "{"):
                return i, "json"
        i += 1
    return None


class _JsonEnd:
    """Finds where a JSON object or array that starts a text ends, fed incrementally (so a long
    held value is scanned once, not once per streamed piece)."""

    __slots__ = ("depth", "escaped", "in_string", "pos")

    def __init__(self) -> None:
        self.pos = 0
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def end(self, text: str) -> int | None:
        """Index just past the value's closing bracket in ``text``, or None while it is open."""
        i = self.pos
        n = len(text)
        while i < n:
            ch = text[i]
            i += 1
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.pos = i
                    return i
        self.pos = i
        return None


def _candidate_end(text: str, kind: str, scanner: _JsonEnd) -> int | None:
    """Where the candidate request of ``kind`` starting ``text`` ends, or None while it is open."""
    if kind == "fence":
        close = text.find(_FENCE, len(_FENCE))
        return None if close < 0 else close + len(_FENCE)
    if kind == "tag":
        close = text.find(_TAG_CLOSE, len(_TAG_OPEN))
        return None if close < 0 else close + len(_TAG_CLOSE)
    return scanner.end(text)


def _request_in(
    candidate: str, kind: str, tool_names: Sequence[str], *, listed_only: bool = True
) -> list[ToolCall] | None:
    """The calls a complete candidate asks for (by default: listed tools only), or None."""
    body = candidate
    if kind == "fence":
        inner = candidate[len(_FENCE) : -len(_FENCE)]
        first, _, rest = inner.partition("\n")
        body = rest if first.strip().isidentifier() else inner  # drop a language tag: json, tool_call
    elif kind == "tag":
        body = candidate[len(_TAG_OPEN) : -len(_TAG_CLOSE)]
    return parse_tool_reply(body, tool_names, listed_only=listed_only)


def split_tool_requests(text: str, tool_names: Sequence[str]) -> tuple[list[ToolCall], str]:
    """The tool requests inside a whole reply, and the reply's other words.

    A reply that is nothing but a request is read with :func:`parse_tool_reply`'s rules (an
    unlisted ``"tool"`` is a call too). Otherwise a request is a JSON object in those forms,
    bare, in a fenced block or in ``<tool_call>`` tags (Hermes, Qwen), naming a listed tool; the
    words around it are kept (joined, outer whitespace trimmed). Returns ``([], text)`` when the
    reply asks for nothing.
    """
    whole = parse_tool_reply(text, tool_names)
    if whole:
        return whole, ""
    calls: list[ToolCall] = []
    words: list[str] = []
    pos = 0
    while True:
        found = _opener(text, pos, at_reply_start=not text[:pos].strip())
        if found is None or found[1] == "partial":
            words.append(text[pos:])
            break
        start, kind = found
        end = _candidate_end(text[start:], kind, _JsonEnd())
        if end is None:
            words.append(text[pos:])
            break
        asked = _request_in(text[start : start + end], kind, tool_names)
        if asked:
            words.append(text[pos:start])
            calls.extend(asked)
        else:
            words.append(text[pos : start + end])
        pos = start + end
    if not calls:
        return [], text
    return calls, "".join(words).strip()


class ToolRequestGate:
    """Splits a streaming reply into words to show now and what may be a tool request, held.

    :meth:`feed` returns the text that can be shown at once: everything before a possible
    request's start (a fence, a ``<tool_call>`` tag, a JSON object), and each such candidate
    once it is complete and turns out not to be a request (a code block in an answer is shown
    when its fence closes). From a real request on, everything is held until the reply ends;
    :meth:`held` is what was not shown. Whitespace at the end is held until more text follows,
    so a request's leading newline is not shown alone.
    """

    __slots__ = ("_buf", "_found", "_kind", "_names", "_scanner", "_shown")

    def __init__(self, tool_names: Sequence[str]) -> None:
        self._names = list(tool_names)
        self._buf = ""
        self._shown = False
        self._found = False
        self._kind = ""  # the kind of the candidate that starts ``_buf``; "" when none does
        self._scanner = _JsonEnd()

    @property
    def shown_any(self) -> bool:
        """Whether any words were shown (then the held part is read as requests inside text)."""
        return self._shown

    def feed(self, piece: str) -> str:
        """Add a streamed piece; returns the text to show now ("" when all of it is held)."""
        self._buf += piece
        if self._found:
            return ""
        out: list[str] = []
        while self._buf:
            if not self._kind:
                found = _opener(self._buf, 0, at_reply_start=not self._shown)
                if found is None:
                    keep = len(self._buf.rstrip())
                    self._emit(out, keep)
                    break
                start, kind = found
                self._emit(out, start)
                if kind == "partial":
                    break
                self._kind = kind
                self._scanner = _JsonEnd()
            end = _candidate_end(self._buf, self._kind, self._scanner)
            if end is None:
                break
            # At the reply's start a request may name any tool (the runner answers "unknown
            # tool"); inside other words only a listed one is a request.
            if _request_in(self._buf[:end], self._kind, self._names, listed_only=self._shown):
                self._found = True
                break
            self._emit(out, end)
            self._kind = ""
        return "".join(out)

    def _emit(self, out: list[str], upto: int) -> None:
        if upto:
            text = self._buf[:upto]
            out.append(text)
            self._buf = self._buf[upto:]
            self._shown = self._shown or bool(text.strip())

    def held(self) -> str:
        """What was not shown (a request and whatever followed it, an unfinished candidate, or
        trailing whitespace)."""
        return self._buf
