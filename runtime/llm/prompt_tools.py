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
answers like native ones. The context window counts the text this module writes
(the runtime hands it :func:`describe_tools`), so the prompt budget holds.
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


def parse_tool_reply(text: str, tool_names: Sequence[str]) -> list[ToolCall] | None:
    """The tool calls a reply asks for, or None when it is an ordinary answer.

    The reply must be exactly one JSON value (optionally in a ```json fence): an object
    ``{"tool": NAME, "arguments": {...}}``, ``{"tool_calls": [such objects]}`` or a list of
    them. ``"name"`` may stand for ``"tool"`` and ``"parameters"`` for ``"arguments"``, and
    OpenAI's own ``{"function": {"name", "arguments"}}`` item is understood. A request keyed
    ``"tool"`` is a call even to a tool not in ``tool_names`` (the runner answers "unknown
    tool", so the model can correct itself); one keyed ``"name"`` must name a listed tool,
    since an answer may well be an object with a name. Each call gets a stable id derived
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
        args = req.get("arguments", req.get("parameters", {}))
        if args is None:
            args = {}
        arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        call_id = "call_" + hashlib.sha1(f"{index}:{body}".encode()).hexdigest()[:16]
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls or None
