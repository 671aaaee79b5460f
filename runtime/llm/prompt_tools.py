"""Tools for endpoints without native tool calling: described in the prompt, parsed from the reply.

When a preset (or ``[llm].supports_tools = false``) says the endpoint cannot take a
``tools`` parameter, the tool schemas are written into the system prompt, as the spec's
``_format_tools`` does, with an instruction to answer a tool request with one JSON object.
A reply that is such an object (optionally in a ```json fence) becomes tool calls.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from runtime.core.messages import ToolCall

_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

INSTRUCTION = (
    "To use a tool, reply with only one JSON object and nothing else: "
    '{"tool": "<tool name>", "arguments": {...}}. '
    'For several tools at once reply {"tool_calls": [{"tool": ..., "arguments": {...}}, ...]}. '
    "Otherwise answer normally."
)


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function")
    return fn if isinstance(fn, dict) else tool


def describe_tools(tools: Sequence[dict[str, Any]]) -> str:
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


def with_tools_in_prompt(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``messages`` whose first system message also describes ``tools``.

    Tool-role messages and assistant tool calls are rewritten as plain text, since an
    endpoint without tool support would reject them.
    """
    description = describe_tools(tools)
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        if role == "tool":
            out.append(
                {
                    "role": "user",
                    "content": f"[tool result {msg.get('name') or msg.get('tool_call_id', '')}]: "
                    f"{msg.get('content') or ''}",
                }
            )
        elif role == "assistant" and msg.get("tool_calls"):
            calls = [
                {"tool": _function(tc).get("name"), "arguments": _function(tc).get("arguments")}
                for tc in msg["tool_calls"]
            ]
            out.append({"role": "assistant", "content": json.dumps({"tool_calls": calls})})
        else:
            out.append(dict(msg))
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{description}".lstrip()
    else:
        out.insert(0, {"role": "system", "content": description})
    return out


def looks_like_tool_json(text: str) -> bool:
    """Whether a reply's start could be a tool request, so it must be held back, not streamed."""
    head = text.lstrip()
    return head.startswith(("{", "```"))


def parse_tool_reply(text: str, tool_names: Sequence[str]) -> list[ToolCall] | None:
    """The tool calls a reply asks for, or None when it is an ordinary answer.

    The reply must be exactly one JSON object (optionally fenced) in the :data:`INSTRUCTION`
    form, naming only tools in ``tool_names``; anything else is an answer. Each call gets a
    stable id derived from the reply, in the chat-completions ``call_...`` style.
    """
    body = text.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1)
    if not body.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    listed = data.get("tool_calls")
    requests: list[Any] = listed if isinstance(listed, list) else [data]
    calls: list[ToolCall] = []
    for index, req in enumerate(requests):
        if not isinstance(req, dict):
            return None
        name = req.get("tool") or req.get("name")
        if not isinstance(name, str) or name not in tool_names:
            return None
        args = req.get("arguments", req.get("parameters", {}))
        arguments = args if isinstance(args, str) else json.dumps(args)
        call_id = "call_" + hashlib.sha1(f"{index}:{body}".encode()).hexdigest()[:16]
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls or None
