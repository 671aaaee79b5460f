"""Conversation export as JSON (lossless, re-importable) and Markdown (for people)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from runtime.core.messages import ChatMessage
from runtime.state.history import ConversationDump

FORMAT = "holdfast.conversation/1"

_ROLE_TITLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def to_json(dump: ConversationDump, exported_at: float) -> str:
    """The whole conversation as indented JSON in the ``holdfast.conversation/1`` format.

    Lossless: metadata, summary, archived and live messages, each as stored.

    Args:
        dump: what :meth:`RedisHistory.dump` read.
        exported_at: Unix time in seconds, recorded in the document.
    """
    summary = dump.summary
    data: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": exported_at,
        "conversation": dump.info.to_dict(),
        "summary": None
        if summary is None
        else {
            "text": summary.text,
            "covers_up_to": summary.covers_up_to,
            "covered_count": summary.covered_count,
            "created_at": summary.created_at,
            "method": summary.method,
            "token_count": summary.token_count,
        },
        "archived": [m.to_dict() for m in dump.archived],
        "messages": [m.to_dict() for m in dump.messages],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def to_markdown(dump: ConversationDump) -> str:
    """The conversation as a Markdown document for people.

    Title, metadata, system prompt, summary, then archived and live messages with their
    times (UTC) and tool calls.

    Tool-call arguments go in fences longer than any backtick run inside them, so message
    text cannot break out of the document's structure.
    """
    info = dump.info
    lines = [f"# {_one_line(info.title) or 'Untitled conversation'}", ""]
    lines.append(f"- Conversation: `{info.id}`")
    lines.append(f"- Started: {_when(info.created_at)}; last activity: {_when(info.updated_at)}")
    lines.append(f"- Messages: {info.message_count}")
    if info.system_prompt:
        lines += ["", "## System prompt", "", _quote(info.system_prompt)]
    if dump.summary is not None:
        lines += ["", f"## Summary of the first {dump.summary.covered_count} messages", "", _quote(dump.summary.text)]
    if dump.archived:
        lines += ["", "## Archived messages"]
        lines += _messages(dump.archived)
    lines += ["", "## Messages"]
    lines += _messages(dump.messages)
    return "\n".join(lines) + "\n"


def _messages(messages: list[ChatMessage]) -> list[str]:
    out: list[str] = []
    for message in messages:
        who = _ROLE_TITLES.get(message.role, message.role)
        if message.name:
            who += f" ({_one_line(message.name)})"
        out += ["", f"### {who} · {_when(message.created_at)}", ""]
        if message.content:
            out.append(message.content)
        for call in message.tool_calls:
            out += ["", f"Tool call `{call.name}`:", "", _fence(call.arguments, "json")]
    return out


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines() or [""])


def _fence(text: str, lang: str) -> str:
    # A fence longer than any backtick run inside keeps hostile content from closing it.
    ticks = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _longest_backtick_run(text: str) -> int:
    best = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    return best
