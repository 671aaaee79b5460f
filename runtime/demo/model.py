"""The deterministic "holdfast-demo" model behind the demo LLM server.

It is not a language model: it reads the request and answers by rule, so a demo (and a
test) sees exactly what reached the model. Rules, in order, for the last message:

* a ``tool`` result -> a one-line answer quoting that result (also a user message of
  ``[tool result NAME]: ...`` lines, how a client without native tools sends results back);
* a user message that clearly asks for offered tools -> tool calls, several in one reply when
  it asks for several things ("remember ..." -> ``memory``; each arithmetic expression ->
  ``calculator``; time or date -> ``clock``: "what is 2+2 and what time is it" is two
  parallel calls), or, under the ``unknown_tool`` fault, a call to :data:`UNKNOWN_TOOL`, a tool
  nobody offered (the hallucinated name a real model sometimes produces). Tools described in
  a system message instead of ``tools`` (an ``Available tools:`` list of ``- NAME: ...``
  lines, what a client sends an endpoint without tool support) are asked for as a local
  model does: the reply text is ``{"tool": NAME, "arguments": {...}}`` (``{"tool_calls":
  [...]}`` for several); a message naming an offered tool ("call NAME with {JSON arguments}",
  "use the tool NAME") calls exactly that one, arguments guessed from its schema when none are
  given (how a demo or a test drives any tool, an MCP server's say);
* a user message asking for a long answer ("a long story", "long answer", "in detail, at
  length") -> about :data:`LONG_REPLY_WORDS` words of deterministic Markdown (headings,
  paragraphs, bullet and numbered lists, code blocks): the long reply the UI stream benchmark
  and tests draw;
* anything else -> a short reply saying how many messages arrived, which recalled
  memories (``[Memory from ...]: ...`` lines in system messages) it saw, quoting the one
  that shares the most words with the user's message.

Every reply starts with ``[holdfast-demo]`` so nobody mistakes it for a real model.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic_core

MODEL_NAME = "holdfast-demo"
EMBED_MODEL_NAME = "holdfast-demo-embed"
EMBED_DIM = 64
LABEL = "[holdfast-demo]"
#: The tool the ``unknown_tool`` fault makes the model call; never a real tool's name.
UNKNOWN_TOOL = "summon_unicorn"

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# The patterns below run on whatever a client sends (megabytes of it): each is written so a
# match attempt cannot rescan the text behind it, keeping every search linear. "1" * 8000 took
# 2 s in the arithmetic pattern, and "1" * 2,000,000 hung the (single-threaded) server.
#: Matched against one line at a time (so ``[^\]]*`` stays within the line).
_MEMORY_LINE_RE = re.compile(r"[ \t]*(?:[-*][ \t]+)?\[Memory from ([^\]]*)\]:(.*)")
_REMEMBER_RE = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that)?[\s:,]+(.+)$", re.IGNORECASE | re.DOTALL)
# Digits joined by at least one operator; brackets and spaces allowed in between.
# Possessive and atomic parts never give back what they took, and the look-arounds start a
# match only where no earlier start could have reached (not inside a run of digits, nor of
# spaces and brackets): each character is then looked at a bounded number of times.
_ARITH_RE = re.compile(
    r"(?:(?<![(\s])(?=[(\s])|(?<!\d)(?=\d)|(?=-))"
    r"[(\s]*+-?\d++(?:\.\d++)?+(?>\s*+[-+*/%^]\s*+[(\s]*+-?\d++(?:\.\d++)?+[)\s]*+)+"
)
_TIME_RE = re.compile(r"\b(time|date|today|clock|what day|which day)\b", re.IGNORECASE)
_TZ_IANA_RE = re.compile(r"\b([A-Z][A-Za-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?)\b")
_TZ_ABBREVIATIONS = (
    "UTC",
    "GMT",
    "CET",
    "CEST",
    "EST",
    "EDT",
    "CST",
    "CDT",
    "MST",
    "MDT",
    "PST",
    "PDT",
    "BST",
    "IST",
    "JST",
    "AEST",
    "AEDT",
    "NZST",
)
_TZ_ABBR_RE = re.compile(r"\b(" + "|".join(_TZ_ABBREVIATIONS) + r")\b")
_WORD_RE = re.compile(r"[a-z0-9]+")
_PROMPT_TOOLS_RE = re.compile(r"^Available tools:[ \t]*\n((?:- [^\n]*\n?)+)", re.MULTILINE)
_PROMPT_TOOL_NAME_RE = re.compile(r"^- ([A-Za-z0-9_.-]+):", re.MULTILINE)
_TOOL_RESULT_RE = re.compile(r"^\[tool result ([^\]\n]*)\]: ?(.*)$", re.MULTILINE)
#: "call NAME", "use the tool NAME", "run NAME with {...}": a tool named by the user, with JSON arguments.
_NAMED_CALL_RE = re.compile(r"\b(?:call|use|run)\s+(?:the\s+)?(?:tool\s+)?`?([A-Za-z0-9_-]{1,64})`?", re.IGNORECASE)
#: What may follow a named tool: `` with {`` and its JSON arguments (up to the text's last ``}``).
_WITH_JSON_RE = re.compile(r"\s+with\s+(?=\{)", re.IGNORECASE)
_LONG_RE = re.compile(
    r"\blong\s+(?:\w+\s+)?(?:answer|reply|story|essay|explanation|response)\b|\bat length\b", re.IGNORECASE
)
#: Most tool calls in one reply (a real model makes a handful; a text of 100,000 sums asked
#: for as many calls, and a reply of megabytes).
MAX_TOOL_CALLS = 32
#: Streamed words (see :func:`split_words`) in a long reply, about as many tokens.
LONG_REPLY_WORDS = 2000
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "my",
        "your",
        "i",
        "you",
        "me",
        "we",
        "it",
        "this",
        "that",
        "what",
        "which",
        "who",
        "how",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "should",
        "please",
        "tell",
        "about",
        "from",
        "as",
        "by",
    ]
)


@dataclass(frozen=True)
class DemoToolCall:
    """A tool call the demo model makes: OpenAI's ``id``, function ``name`` and ``arguments`` JSON text."""

    id: str
    name: str
    arguments: str  # JSON text, exactly what is streamed to the client


@dataclass(frozen=True)
class DemoReply:
    """What the demo model decided: text, or tool calls (then ``text`` is None)."""

    text: str | None
    tool_calls: tuple[DemoToolCall, ...] = ()
    prompt_tokens: int = 0

    @property
    def finish_reason(self) -> str:
        """OpenAI's finish reason for this reply: ``tool_calls`` or ``stop``."""
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def completion_tokens(self) -> int:
        """The reply's ``usage.completion_tokens``: one per streamed word, or :func:`count_tokens` of the tool calls."""
        if self.tool_calls:
            return sum(count_tokens(tc.name) + count_tokens(tc.arguments) for tc in self.tool_calls)
        return len(split_words(self.text or ""))


@dataclass(frozen=True)
class Memory:
    """A memory the prompt carried (``[Memory from SOURCE]: TEXT`` in a system message)."""

    source: str
    text: str


@dataclass
class _Request:
    messages: list[dict[str, Any]]
    tool_names: set[str] = field(default_factory=set)


def count_tokens(text: str) -> int:
    """The demo server's own token count: words and punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def truncate_tokens(text: str, limit: int) -> str:
    """The start of ``text`` holding its first ``limit`` tokens (as :func:`count_tokens` counts)."""
    if limit <= 0:
        return ""
    for index, match in enumerate(_TOKEN_RE.finditer(text)):
        if index == limit:
            return text[: match.start()].rstrip()
    return text


def split_words(text: str) -> list[str]:
    """The streamed pieces: each word with the whitespace that follows it, so they join back exactly."""
    return re.findall(r"\S+\s*", text)


def message_text(message: dict[str, Any]) -> str:
    """Text of an OpenAI-format message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def recalled_memories(messages: Sequence[dict[str, Any]]) -> list[Memory]:
    """The ``[Memory from SOURCE]: TEXT`` lines of every system message, in order."""
    found: list[Memory] = []
    for msg in messages:
        if msg.get("role") == "system":
            for line in message_text(msg).splitlines():
                memory = _MEMORY_LINE_RE.match(line)
                if memory and memory.group(2).strip():
                    found.append(Memory(memory.group(1).strip(), memory.group(2).strip()))
    return found


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS}


def most_relevant(memories: Sequence[Memory], query: str) -> Memory | None:
    """The memory sharing the most content words with ``query`` (first wins a tie), or None."""
    query_words = _words(query)
    best: Memory | None = None
    best_score = 0
    for memory in memories:
        score = len(query_words & _words(memory.text))
        if score > best_score:
            best, best_score = memory, score
    return best


def _call_id(seed: str, index: int) -> str:
    return "call_" + hashlib.sha1(f"{index}:{seed}".encode()).hexdigest()[:16]


def _arithmetic(text: str) -> list[str]:
    """Every distinct arithmetic expression in ``text``, in order (at most :data:`MAX_TOOL_CALLS`)."""
    found: dict[str, None] = {}
    for match in _ARITH_RE.finditer(text):
        expr = match.group(0).strip()
        if any(op in expr.lstrip("-(") for op in "+-*/%^") and sum(c.isdigit() for c in expr) >= 2:
            found.setdefault(expr)
            if len(found) == MAX_TOOL_CALLS:
                break
    return list(found)


def _timezone(text: str) -> str:
    iana = _TZ_IANA_RE.search(text)
    if iana:
        return iana.group(1)
    abbr = _TZ_ABBR_RE.search(text)
    return abbr.group(1) if abbr else "UTC"


def _tool_requests(text: str, tools: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The offered tools ``text`` clearly asks for, in the order a reader would run them."""
    remember = _REMEMBER_RE.match(text)
    fact = remember.group(1).strip().rstrip(".") if remember else ""
    if fact and "memory" in tools:
        # Everything after "remember" is the fact, numbers and times included.
        return [("memory", {"action": "remember", "text": fact})]
    wanted: list[tuple[str, dict[str, Any]]] = []
    if "calculator" in tools:
        wanted.extend(("calculator", {"expression": expr}) for expr in _arithmetic(text))
    if _TIME_RE.search(text) and "clock" in tools:
        wanted.append(("clock", {"timezone": _timezone(text)}))
    return wanted


def _tool_name_for(messages: Sequence[dict[str, Any]], call_id: str | None) -> str:
    for msg in reversed(messages):
        for tc in msg.get("tool_calls") or ():
            if tc.get("id") == call_id:
                return str((tc.get("function") or {}).get("name") or "tool")
    return "tool"


def _quote(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _tool_answer(messages: Sequence[dict[str, Any]]) -> str:
    # Answer from every tool result after the last assistant turn (parallel calls).
    results: list[str] = []
    for msg in reversed(messages):
        if msg.get("role") != "tool":
            break
        name = msg.get("name") or _tool_name_for(messages, msg.get("tool_call_id"))
        results.append(f'{name} returned "{_quote(message_text(msg))}"')
    results.reverse()
    return f"{LABEL} The " + "; the ".join(results) + "."


def prompt_described_tools(messages: Sequence[dict[str, Any]]) -> list[str]:
    """Names of the tools a system message describes in text (``Available tools:`` then one
    ``- NAME: description`` line each), in order; empty when there is no such list."""
    for message in messages:
        if message.get("role") != "system":
            continue
        found = _PROMPT_TOOLS_RE.search(message_text(message))
        if found:
            return _PROMPT_TOOL_NAME_RE.findall(found.group(1))
    return []


def _text_tool_answer(text: str) -> str | None:
    """The answer to tool results sent back as text (``[tool result NAME]: output`` lines)."""
    results = [f'{name} returned "{_quote(output)}"' for name, output in _TOOL_RESULT_RE.findall(text)]
    if not results or not text.lstrip().startswith("[tool result "):
        return None
    return f"{LABEL} The " + "; the ".join(results) + "."


def _text_tool_request(wanted: Sequence[tuple[str, dict[str, Any]]]) -> str:
    calls = [{"tool": name, "arguments": args} for name, args in wanted]
    return json.dumps(calls[0] if len(calls) == 1 else {"tool_calls": calls})


#: Every role the API accepts, in the order the plain answer counts them.
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _plain_answer(messages: Sequence[dict[str, Any]], user_text: str) -> str:
    roles = [m.get("role") for m in messages]
    counts = ", ".join(f"{roles.count(r)} {r}" for r in _ROLES if roles.count(r))
    noun = "message" if len(messages) == 1 else "messages"
    parts = [f"{LABEL} I received {len(messages)} {noun} ({counts})."]
    if user_text:
        parts.append(f'You said: "{_quote(user_text, 120)}".')
    memories = recalled_memories(messages)
    if memories:
        best = most_relevant(memories, user_text)
        noun = "memory" if len(memories) == 1 else "memories"
        if best is not None:
            parts.append(
                f'I see {len(memories)} recalled {noun}; the relevant one ({best.source}) says: "{_quote(best.text)}".'
            )
        else:
            parts.append(f"I see {len(memories)} recalled {noun}, none related to this message.")
    else:
        parts.append("I see no recalled memories.")
    return " ".join(parts)


_LONG_TOPICS = (
    "circuit breakers",
    "retries with jitter",
    "bulkheads",
    "timeouts",
    "fallbacks",
    "health checks",
    "journals",
    "backpressure",
)


def _long_section(index: int) -> str:
    """One deterministic section of the long reply; the index varies topics, lists and code."""
    topic = _LONG_TOPICS[index % len(_LONG_TOPICS)]
    lines = [f"## {index + 1}. On {topic}", ""]
    lines.append(
        " ".join(
            f"Sentence {s + 1} of part {index + 1} explains how {topic} keep a service answering when a "
            f"dependency fails, and why the **cost** of `{topic.split()[0]}` stays small."
            for s in range(3)
        )
    )
    lines.append("")
    if index % 2 == 0:
        lines.extend(f"- point {p + 1}: {topic} bound the damage of failure number {index * 4 + p}" for p in range(4))
    else:
        lines.extend(f"{p + 1}. step {p + 1} for {topic}, checked {index + p} times" for p in range(4))
    lines.append("")
    if index % 3 == 0:
        lines.extend(
            [
                "```python",
                f"def part_{index + 1}(attempt: int) -> float:",
                f'    """Delay before attempt {index + 1} of {topic}."""',
                f"    return min(30.0, 0.5 * 2 ** attempt)  # capped at {index + 30} s",
                "```",
                "",
            ]
        )
    elif index % 3 == 1:
        lines.extend([f"> A quoted remark about {topic}, part {index + 1}.", ""])
    return "\n".join(lines) + "\n"


def long_answer(user_text: str) -> str:
    """About :data:`LONG_REPLY_WORDS` streamed words of Markdown, the same for the same request."""
    parts = [f'{LABEL} A long answer to "{_quote(user_text, 80)}".\n\n# Staying up\n\n']
    words = len(split_words(parts[0]))
    index = 0
    while words < LONG_REPLY_WORDS:
        section = _long_section(index)
        parts.append(section)
        words += len(split_words(section))
        index += 1
    parts.append("That is the whole story.\n")
    return "".join(parts)


ToolChoice = Literal["auto", "none", "required"]


def _tool_schema(tools: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for t in tools:
        fn = t.get("function") or t
        if fn.get("name") == name and isinstance(fn.get("parameters"), dict):
            return dict(fn["parameters"])
    return {}


def _guess(prop: str, schema: object, text: str) -> object:
    """A plausible value for one parameter when a call is forced but the text does not say."""
    spec = schema if isinstance(schema, dict) else {}
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return spec["enum"][0]
    kind = spec.get("type")
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    if "timezone" in prop.lower():
        return _timezone(text)
    found = _arithmetic(text)
    return found[0] if found and "expr" in prop.lower() else _quote(text, 80)


def _forced_call(tools: Sequence[dict[str, Any]], name: str, text: str) -> tuple[str, dict[str, Any]]:
    """A call to ``name`` when ``tool_choice`` forces it: what the text asks for, else guessed
    from the tool's JSON Schema (each required parameter, or every parameter if none is required)."""
    asked = [w for w in _tool_requests(text, {name}) if w[0] == name]
    if asked:
        return asked[0]
    schema = _tool_schema(tools, name)
    raw_props = schema.get("properties")
    props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
    raw_required = schema.get("required")
    required: list[Any] = raw_required if isinstance(raw_required, list) else list(props)
    return name, {str(p): _guess(str(p), props.get(str(p)), text) for p in required}


def _json_in_text(text: str) -> object:
    """The JSON value ``text`` spells, or None when it is not JSON.

    Parsed with pydantic-core, which refuses nesting deeper than about 200 levels: the text is
    the user's, and ``json.loads`` of ``{"a": [[[[...`` 100,000 levels deep raised
    RecursionError (a 500) instead of treating it as not JSON.
    """
    try:
        return pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError:
        return None


def _named_call(
    text: str, tools: Sequence[dict[str, Any]], offered: set[str]
) -> tuple[tuple[str, dict[str, Any]], bool] | None:
    """The call to an offered tool ``text`` names, and whether it gave the arguments as JSON."""
    for match in _NAMED_CALL_RE.finditer(text):
        name = match.group(1)
        if name not in offered:
            continue
        with_json = _WITH_JSON_RE.match(text, match.end())
        end = text.rfind("}") + 1
        if with_json and end > with_json.end():
            arguments = _json_in_text(text[with_json.end() : end])
            if isinstance(arguments, dict):
                return (name, arguments), True
        return _forced_call(tools, name, text), False
    return None


def respond(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    *,
    unknown_tool: bool = False,
    tool_choice: ToolChoice = "auto",
    forced_tool: str | None = None,
) -> DemoReply:
    """Decide the demo model's reply to an OpenAI-format chat request.

    ``unknown_tool`` (the fault of that name) makes every reply to a user message a call to
    :data:`UNKNOWN_TOOL`, whatever was offered.

    ``tool_choice`` and ``forced_tool`` follow OpenAI's ``tool_choice``: ``"none"`` never calls
    a tool; ``"auto"`` calls the tools the message clearly asks for; ``"required"`` always calls
    one (the first offered tool, arguments guessed from its schema, when none is asked for);
    ``forced_tool`` (a named ``tool_choice``) calls exactly that tool. Forcing applies to the
    answer to a user message; after tool results the model answers in words, so an agent
    loop that keeps ``"required"`` ends instead of calling tools forever.
    """
    prompt_tokens = sum(count_tokens(message_text(m)) + 4 for m in messages) + sum(
        count_tokens(json.dumps(t, sort_keys=True)) for t in tools or ()
    )
    if not messages:
        return DemoReply(f"{LABEL} I received no messages.", prompt_tokens=prompt_tokens)
    last = messages[-1]
    if last.get("role") == "tool":
        return DemoReply(_tool_answer(messages), prompt_tokens=prompt_tokens)
    user_text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    offered = [str((t.get("function") or t).get("name")) for t in tools or ()]
    described = [] if tools else prompt_described_tools(messages)
    if described and last.get("role") == "user" and tool_choice != "none":
        answered = _text_tool_answer(user_text)
        if answered is not None:
            return DemoReply(answered, prompt_tokens=prompt_tokens)
        wanted_in_text = _tool_requests(user_text, set(described))
        if wanted_in_text:
            return DemoReply(_text_tool_request(wanted_in_text), prompt_tokens=prompt_tokens)
    tool_names = set() if tool_choice == "none" else set(offered)
    if last.get("role") == "user":
        seed = f"{len(messages)}:{user_text}"
        if unknown_tool and tool_choice != "none":
            call = DemoToolCall(_call_id(seed, 0), UNKNOWN_TOOL, json.dumps({"request": _quote(user_text, 80)}))
            return DemoReply(None, (call,), prompt_tokens=prompt_tokens)
        wanted = _tool_requests(user_text, tool_names)
        named = _named_call(user_text, tools or (), tool_names)
        if named is not None and (named[1] or not wanted):
            wanted = [named[0]]
        if forced_tool is not None:
            wanted = [_forced_call(tools or (), forced_tool, user_text)]
        elif tool_choice == "required" and not wanted and offered:
            wanted = [_forced_call(tools or (), offered[0], user_text)]
        if wanted:
            calls = tuple(
                DemoToolCall(_call_id(seed, i), name, json.dumps(args)) for i, (name, args) in enumerate(wanted)
            )
            return DemoReply(None, calls, prompt_tokens=prompt_tokens)
        if _LONG_RE.search(user_text):
            return DemoReply(long_answer(user_text), prompt_tokens=prompt_tokens)
    return DemoReply(_plain_answer(messages, user_text), prompt_tokens=prompt_tokens)


def thinking(messages: Sequence[dict[str, Any]], reply: DemoReply) -> str:
    """The visible "reasoning" a reasoning profile streams before ``reply``: a few deterministic
    sentences about what arrived and what the model decided (about 60 words)."""
    user_text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    parts = [
        f'Okay, the user wrote: "{_quote(user_text, 80)}".',
        (
            "There is 1 message in this conversation"
            if len(messages) == 1
            else f"There are {len(messages)} messages in this conversation"
        )
        + "; let me work out what is being asked.",
    ]
    if reply.tool_calls:
        names = ", then ".join(c.name for c in reply.tool_calls)
        parts.append(f"I cannot answer this from memory alone: I should call {names} and wait for the result.")
    elif messages and messages[-1].get("role") == "tool":
        parts.append("A tool has returned its result, so I only need to report it plainly.")
    elif reply.text and len(reply.text) > 1000:
        parts.append("They want a long answer, so I will write Markdown with headings, lists and code blocks.")
    else:
        memories = recalled_memories(messages)
        seen = f"I can see {len(memories)} recalled memories to check." if memories else "No memories were recalled."
        parts.append(f"No tool is needed; I will answer directly. {seen}")
    parts.append("I must keep the answer labelled as the demo model's.")
    return " ".join(parts)


def embed(text: str, dim: int = EMBED_DIM) -> list[float]:
    """A deterministic hashed bag-of-words vector, L2-normalised (zero text gives a unit axis)."""
    vec = [0.0] * dim
    for word in _WORD_RE.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot, sign = struct.unpack("<IxxxB", digest)
        vec[slot % dim] += 1.0 if sign & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]
