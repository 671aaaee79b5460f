"""Conversation export as JSON (lossless, re-importable) and Markdown (for people).

Both mark what happened to a reply, from its stored metadata (see :func:`marks`): a reply the
user interrupted or that broke off, one cut at the output limit, a fallback notice shown while
the LLM was down, an answer served from the cache, an earlier variant a ``/retry`` replaced.
Markdown closes a code fence a partial reply left open, so the rest of the document does not
render as code.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from runtime.core.messages import ChatMessage
from runtime.core.variants import choices_from, variant_ids
from runtime.state.history import ConversationDump, ConversationInfo

FORMAT = "holdfast.conversation/1"

#: The marks :func:`marks` can give, with the words Markdown shows for each.
MARK_WORDS: dict[str, str] = {
    "interrupted": "interrupted: stopped before the end",
    "cut_off": "cut off at a length limit (the output limit or a full context window)",
    "fallback": "fallback notice: the LLM was unavailable (hidden from later prompts)",
    "cached": "cached: an earlier answer to the same prompt, served while the LLM was unavailable",
    "variant": "earlier variant, replaced by /retry (hidden from later prompts)",
}

_ROLE_TITLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def to_json(dump: ConversationDump, exported_at: float) -> str:
    """The whole conversation as indented JSON in the ``holdfast.conversation/1`` format.

    Lossless: metadata, summary, archived and live messages, each as stored.

    Args:
        dump: what :meth:`RedisHistory.dump` read.
        exported_at: Unix time in seconds, recorded in the document.
    """
    summary = dump.summary
    replaced = variant_ids([*dump.archived, *dump.messages], choices=choices_from(dump.info.settings))
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
        "archived": [_json_message(m, replaced) for m in dump.archived],
        "messages": [_json_message(m, replaced) for m in dump.messages],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def _json_message(message: ChatMessage, replaced: set[str]) -> dict[str, Any]:
    data = message.to_dict()
    data["marks"] = marks(message, message.id in replaced)
    return data


def marks(message: ChatMessage, variant: bool = False) -> list[str]:
    """What happened to an assistant reply, from its stored metadata, as keys of :data:`MARK_WORDS`:
    ``interrupted`` (Esc, or the stream broke off), ``cut_off`` (``finish_reason: "length"``),
    ``fallback`` (a canned or degraded notice), ``cached`` (``source: "cache"``), ``variant`` (replaced
    by ``/retry``: ``variant`` true, from :func:`runtime.core.variants.variant_ids`). Empty for an
    ordinary message."""
    meta = message.metadata
    found: list[str] = []
    if meta.get("interrupted"):
        found.append("interrupted")
    if meta.get("cut_off") or meta.get("finish_reason") == "length":
        found.append("cut_off")
    if meta.get("fallback"):
        found.append("fallback")
    if meta.get("source") == "cache":
        found.append("cached")
    if variant:
        found.append("variant")
    return found


def mark_line(message: ChatMessage, variant: bool = False) -> str:
    """The Markdown line marking a reply (``""`` for an ordinary one): each mark in words, and the
    stored error or stop reason."""
    found = marks(message, variant)
    if not found:
        return ""
    words = [MARK_WORDS[m] for m in found]
    reason = message.metadata.get("error") or (
        "stopped by the user" if message.metadata.get("stop_reason") == "cancelled" else ""
    )
    if reason and "fallback" not in found:
        words.append(_one_line(str(reason)))
    return "> **⚠ " + "; ".join(words) + "**"


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def close_fences(text: str) -> str:
    """``text`` with a code fence it opens and never closes closed at the end (CommonMark fences:
    three or more backticks or tildes, closed by a run of the same character at least as long
    with nothing after it). Text whose fences are balanced comes back unchanged."""
    open_fence = ""
    for line in text.splitlines():
        found = _FENCE.match(line)
        if found is None:
            continue
        run, rest = found.group(1), found.group(2)
        if not open_fence:
            if run[0] == "`" and "`" in rest:  # not a fence: a backtick info string
                continue
            open_fence = run
        elif run[0] == open_fence[0] and len(run) >= len(open_fence) and not rest.strip():
            open_fence = ""
    if not open_fence:
        return text
    return text + ("" if text.endswith("\n") else "\n") + open_fence


def to_markdown(dump: ConversationDump) -> str:
    """The conversation as a Markdown document for people.

    Title, metadata, system prompt, summary, then archived and live messages with their seq
    (``#N``, what ``holdfast conversations branch --at`` takes), times (UTC) and tool calls. A
    branch names its parent in the header and marks its branch point after the last shared
    message (the messages above it are the parent's, shared).

    Tool-call arguments go in fences longer than any backtick run inside them, so message
    text cannot break out of the document's structure.
    """
    info = dump.info
    replaced = variant_ids([*dump.archived, *dump.messages], choices=choices_from(dump.info.settings))
    lines = [f"# {_one_line(info.title) or 'Untitled conversation'}", ""]
    lines.append(f"- Conversation: `{info.id}`")
    lines.append(f"- Started: {_when(info.created_at)}; last activity: {_when(info.updated_at)}")
    lines.append(f"- Messages: {info.message_count}")
    if info.parent_id:
        after = "before its first message" if info.fork_seq == -1 else f"after message #{info.fork_seq}"
        lines.append(f"- Branch of `{info.parent_id}` {after}")
    if info.system_prompt:
        lines += ["", "## System prompt", "", _quote(info.system_prompt)]
    if dump.summary is not None:
        lines += ["", f"## Summary of the first {dump.summary.covered_count} messages", "", _quote(dump.summary.text)]
    if dump.archived:
        lines += ["", "## Archived messages"]
        lines += _messages(dump.archived, replaced, info)
    lines += ["", "## Messages"]
    if info.parent_id and info.fork_seq == -1:
        lines += ["", _branch_mark(info)]
    lines += _messages(dump.messages, replaced, info)
    return "\n".join(lines) + "\n"


def _branch_mark(info: ConversationInfo) -> str:
    if info.fork_seq == -1:
        return f"--- ↳ branch point: no messages are shared with `{info.parent_id}`; this branch starts here ---"
    return f"--- ↳ branch point: the messages above are shared with `{info.parent_id}`; this branch goes on below ---"


def _messages(messages: list[ChatMessage], replaced: set[str], info: ConversationInfo) -> list[str]:
    out: list[str] = []
    for message in messages:
        who = _ROLE_TITLES.get(message.role, message.role)
        if message.name:
            who += f" ({_one_line(message.name)})"
        seq = "" if message.seq is None else f" #{message.seq}"
        out += ["", f"### {who}{seq} · {_when(message.created_at)}", ""]
        line = mark_line(message, message.id in replaced)
        if line:
            out += [line, ""]
        if message.content:
            out.append(close_fences(message.content))
        for call in message.tool_calls:
            out += ["", f"Tool call `{call.name}`:", "", _fence(call.arguments, "json")]
        if info.parent_id and message.seq is not None and message.seq == info.fork_seq:
            out += ["", _branch_mark(info)]
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
