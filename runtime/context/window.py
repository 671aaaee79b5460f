"""ContextWindowManager: the token-budgeted, tool-safe prompt for one LLM call.

Budget = the model's context window minus the tokens reserved for the reply (and at most
``[context].max_prompt_tokens`` when set). What goes in, in priority order:

1. the system prompt, always, and the tool schemas: sent in the API's ``tools`` (native) or,
   for an endpoint without tool support, described in the prompt by the LLM client (one owner:
   :mod:`runtime.llm.prompt_tools`). Either way :attr:`BuiltPrompt.tools` carries the schemas
   and this module counts what will be sent: the ``tools`` parameter, or the text the client
   writes (the ``tools_text`` function the runtime injects, ``describe_tools``);
2. the newest user message, always; if it alone does not fit, its middle is cut on token
   boundaries with a visible "[... N tokens omitted ...]" marker (the stored text is untouched);
   files the user attached to it (``@path``, :mod:`runtime.context.attachments`) go in just
   before it, as their own section, within a share of the room left;
3. the recalled memories, as one system message, most relevant first, each kept if it fits;
4. the conversation summary (the archived start of the conversation), if it fits;
5. history, newest first, in whole units (an assistant tool call with all its results), as far
   as the budget goes, emitted in chronological order. Long tool outputs are first shrunk to a
   preview so more turns fit; leftover budget then restores full outputs, newest first.

Cost grows with the messages kept, not the conversation's length: history is read backwards
(from a :class:`~runtime.core.messages.HistoryReader` in growing pages, or by index from an in-memory
sequence) only until a lower bound of its cost passes the budget, and stored per-message token
counts are used instead of re-tokenising.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from runtime.config import ContextConfig
from runtime.context.attachments import ATTACHMENT_SHARE, Attachment, AttachmentFigure, attachments_section
from runtime.context.groups import Unit, group_units, last_user_index
from runtime.context.report import BuiltPrompt, ContextOverflowError, PromptReport, ToolsMode
from runtime.context.tokens import REPLY_PRIMING_TOKENS, TokenCounter
from runtime.context.truncate import PREVIEW_MIN_SAVING, tool_output_preview, truncate_middle
from runtime.core.errors import InternalError, ValidationError
from runtime.core.messages import ChatMessage, ConversationSummary, HistoryReader

MEMORIES_HEADER = "Relevant memories from earlier conversations (they may be out of date):"
SUMMARY_HEADER = "Summary of the earlier part of this conversation"

#: Writes the prompt text that describes tools for an endpoint without native tool calls
#: (the LLM client's ``runtime.llm.prompt_tools.describe_tools``, injected by the runtime).
ToolsText = Callable[[Sequence[Mapping[str, Any]]], str]

#: How many messages past the budget the scan may still read to find the newest user message
#: (a turn with many tool steps puts it far back).
ANCHOR_SEARCH_LIMIT = 256
FIRST_PAGE = 32
MAX_PAGE = 1024
#: First page asked of a reader with ``read_recent`` (summary and tail in one call): such a
#: reader keeps decoded messages, so a larger first page costs a slice, not a decode, and
#: usually saves the further round trips a doubling series of small pages would take.
RECENT_PAGE = 256


class HasText(Protocol):
    """A recalled memory object: anything with a ``text`` attribute (e.g. a memory record)."""

    text: str


Memory = str | HasText


def prompt_budget(config: ContextConfig, context_window: int) -> int:
    """Tokens a prompt may use: window minus reserved output, capped by ``max_prompt_tokens``."""
    budget = context_window - config.reserved_output_tokens
    if config.max_prompt_tokens:
        budget = min(budget, config.max_prompt_tokens)
    return budget


def schema_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The default ``tools_text`` when none is injected: the function schemas as JSON, one per
    line, an estimate of the same size as a prompt description of them."""
    return "\n".join(json.dumps(tool.get("function") or tool, ensure_ascii=False) for tool in tools)


def _native_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if "function" in tool:
        return dict(tool)
    return {"type": "function", "function": dict(tool)}


def _memory_text(memory: Memory) -> str:
    return (memory if isinstance(memory, str) else str(memory.text)).strip()


def memories_message(texts: Sequence[str]) -> dict[str, Any]:
    """The system message that carries recalled memories: a header, then one ``- text`` line each."""
    return {"role": "system", "content": MEMORIES_HEADER + "\n" + "\n".join(f"- {t}" for t in texts)}


def summary_message(summary: ConversationSummary) -> dict[str, Any]:
    """The system message that stands in for the archived start of the conversation."""
    how = ", extractive" if summary.method == "extractive" else ""
    return {
        "role": "system",
        "content": f"{SUMMARY_HEADER} ({summary.covered_count} earlier messages{how}):\n{summary.text}",
    }


# ---------------------------------------------------------------------- reading the tail


@dataclass
class _Tail:
    messages: list[ChatMessage]  # chronological
    reached_start: bool
    total_messages: int | None  # length of the live history, when known


class _TailScanner:
    """Decides, message by message from the newest, when enough history has been read.

    Uses a lower bound of what each message can cost in the prompt (a long tool output may
    shrink to a preview), so stopping never loses a unit that could have fit.
    """

    def __init__(self, counter: TokenCounter, available: int, preview_tokens: int, anchor_limit: int) -> None:
        self._counter = counter
        self._available = available
        self._tool_floor = max(1, preview_tokens // 2)
        self._anchor_limit = anchor_limit
        self._spent = 0
        self._anchor_found = False
        self._past_budget = 0

    def add(self, message: ChatMessage) -> bool:
        """Account for ``message``; True once older messages cannot matter."""
        return self.scan_back([message]) is not None

    def scan_back(self, messages: Sequence[ChatMessage], end: int | None = None) -> int | None:
        """Account for ``messages[:end]`` newest first; the index where older ones stop
        mattering, or None when all of them may (one call per page: no call per message)."""
        count = self._counter.count_message
        floor, available, limit = self._tool_floor, self._available, self._anchor_limit
        spent, anchor_found, past = self._spent, self._anchor_found, self._past_budget
        stop: int | None = None
        for index in range(len(messages) if end is None else end, 0, -1):
            message = messages[index - 1]
            cost = count(message)
            role = message.role
            if role == "tool":
                if cost > floor:
                    cost = floor
            elif role == "user":
                anchor_found = True
            spent += cost
            if spent <= available:
                continue
            if not anchor_found:
                past += 1
                if past <= limit:
                    continue
            stop = index - 1
            break
        self._spent, self._anchor_found, self._past_budget = spent, anchor_found, past
        return stop


def _tail_of_sequence(history: Sequence[ChatMessage], scanner: _TailScanner) -> _Tail:
    stop = scanner.scan_back(history)
    index = 0 if stop is None else stop
    return _Tail(list(history[index:]), reached_start=index == 0, total_messages=len(history))


async def _tail_of_reader(
    reader: HistoryReader,
    conversation_id: str,
    scanner: _TailScanner,
    live_start: int,
    newest: tuple[list[ChatMessage], int] | None = None,
) -> _Tail:
    """Pages backwards through the store. ``live_start`` is the ``seq`` of the first live
    message: the store numbers messages across the whole conversation, so after a summary
    the live history starts at the summary's ``covered_count``, not at 0. ``newest`` is the
    newest page already read (with the limit it was read with), if any."""
    pages: list[list[ChatMessage]] = []
    before: int | None = None
    limit = FIRST_PAGE if newest is None else newest[1]
    total: int | None = None
    reached_start = False
    while True:
        if newest is not None:
            page, newest = newest[0], None
        else:
            page = await reader.read_tail(conversation_id, limit, before_seq=before)
        if not page:
            reached_start = True
            break
        if total is None and page[-1].seq is not None:
            total = page[-1].seq + 1 - live_start
        cut = scanner.scan_back(page)
        if cut is not None:
            pages.append(page[cut:])
            first = page[cut].seq
            reached_start = first is not None and first <= live_start
            break
        pages.append(page)
        first = page[0].seq
        if len(page) < limit or first is None or first <= live_start:
            # A short page is the start; without positions we cannot page further back.
            reached_start = len(page) < limit or (first is not None and first <= live_start)
            break
        before = first
        limit = min(limit * 2, MAX_PAGE)
    messages = [msg for page in reversed(pages) for msg in page]
    if total is not None and total < len(messages):  # positions not as the store numbers them
        total = None
    return _Tail(messages, reached_start, total)


# ---------------------------------------------------------------------- planning


Preview = tuple[dict[str, Any], int]  # a shortened tool message as sent, and its token count


@dataclass
class _Selection:
    """Which units are sent, which of their tool outputs are previews, and the room left."""

    kept: list[int]  # unit indexes, newest first
    # unit index -> [(message index, preview, full cost)] for outputs sent as a preview
    previews: dict[int, list[tuple[int, Preview, int]]]
    room: int


class _Planner:
    def __init__(
        self,
        counter: TokenCounter,
        config: ContextConfig,
        context_window: int,
        *,
        native_tools: bool,
        preview_cache: dict[tuple[str, int], Preview | None],
        tools_text: ToolsText = schema_text,
    ) -> None:
        self.counter = counter
        self.config = config
        self.context_window = context_window
        self.budget = prompt_budget(config, context_window)
        self.native_tools = native_tools
        self.tools_text = tools_text
        self._previews = preview_cache

    def fixed_part(
        self, system_prompt: str, tools: Sequence[Mapping[str, Any]] | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]] | None, int, int, ToolsMode]:
        """The system message, the tool schemas, their token costs and the tools mode.

        In ``text`` mode the schemas are still returned: the LLM client writes them into the
        system message as it sends the request; counted here is that text and its seam.
        """
        system = {"role": "system", "content": system_prompt}
        system_tokens = self.counter.count_openai_message(system)
        if not tools:
            return system, None, system_tokens, 0, "none"
        native = [_native_tool(t) for t in tools]
        if self.native_tools:
            return system, native, system_tokens, self.counter.count_tools(native), "native"
        block = self.tools_text(native)
        described = {"role": "system", "content": f"{system_prompt}\n\n{block}" if system_prompt else block}
        with_block = self.counter.count_openai_message(described)
        return system, native, system_tokens, with_block - system_tokens, "text"

    def history_room(self, system_tokens: int, tools_tokens: int) -> int:
        if self.budget <= 0:
            raise ContextOverflowError(
                f"no room for a prompt: context window {self.context_window} minus "
                f"{self.config.reserved_output_tokens} reserved output tokens",
                details={"context_window": self.context_window, "budget": self.budget},
            )
        fixed = system_tokens + tools_tokens + REPLY_PRIMING_TOKENS
        if fixed > self.budget:
            raise ContextOverflowError(
                f"the system prompt ({system_tokens} tokens) and tool schemas ({tools_tokens} tokens) "
                f"do not fit the prompt budget of {self.budget} tokens",
                details={"system_tokens": system_tokens, "tools_tokens": tools_tokens, "budget": self.budget},
            )
        return self.budget - fixed

    def scanner(self, room: int) -> _TailScanner:
        return _TailScanner(self.counter, room, self.config.tool_output_preview_tokens, ANCHOR_SEARCH_LIMIT)

    def _preview(self, message: ChatMessage) -> Preview | None:
        """A long tool output's preview (cached by message id and content), or None."""
        if self.counter.count_message(message) <= self.config.tool_output_preview_tokens + PREVIEW_MIN_SAVING:
            return None
        key = (message.id, hash(message.content))
        if key not in self._previews:
            text = tool_output_preview(self.counter, message.content, self.config.tool_output_preview_tokens)
            preview: Preview | None = None
            if text is not None:
                short = {**message.to_openai(), "content": text}
                preview = (short, self.counter.count_openai_message(short))
            self._previews[key] = preview
        cached = self._previews[key]
        return cached if cached is not None and cached[1] < self.counter.count_message(message) else None

    def _anchor(self, message: ChatMessage, room: int) -> tuple[dict[str, Any], int, int]:
        """The newest user message as sent, its cost, and the tokens cut from its middle when
        it alone exceeds ``room``."""
        out = message.to_openai()
        cost = self.counter.count_message(message)
        if cost <= room:
            return out, cost, 0
        overhead = self.counter.count_openai_message({**out, "content": ""})
        cut = truncate_middle(self.counter, message.content, room - overhead) if room > overhead else None
        if cut is None:
            raise ContextOverflowError(
                f"the newest message cannot fit: only {room} tokens are left after the system prompt "
                f"and tool schemas (budget {self.budget})",
                details={"room": room, "budget": self.budget},
            )
        short = {**out, "content": cut[0]}
        return short, self.counter.count_openai_message(short), cut[1]

    def plan(
        self,
        system_prompt: str,
        tail: _Tail,
        tools: Sequence[Mapping[str, Any]] | None,
        memories: Sequence[Memory],
        summary: ConversationSummary | None,
        attachments: Sequence[Attachment] = (),
    ) -> BuiltPrompt:
        system, native_tools, system_tokens, tools_tokens, tools_mode = self.fixed_part(system_prompt, tools)
        room = self.history_room(system_tokens, tools_tokens)

        messages = tail.messages
        window_cut = 0
        if not tail.reached_start:
            # Results whose call lies before the read window: dropped by the budget, not unsendable.
            while window_cut < len(messages) and messages[window_cut].role == "tool":
                window_cut += 1
            messages = messages[window_cut:]
        grouping = group_units(messages)
        units = grouping.units
        anchor = last_user_index(units)

        anchor_out: dict[str, Any] | None = None
        anchor_cost = omitted = 0
        if anchor is not None:
            anchor_out, anchor_cost, omitted = self._anchor(units[anchor].messages[0], room)
            room -= anchor_cost

        att_msg, att_figures = attachments_section(self.counter, attachments, int(room * ATTACHMENT_SHARE))
        att_tokens = self.counter.count_openai_message(att_msg) if att_msg is not None else 0
        if att_tokens > room:  # joined blocks may tokenise a little differently: never overspend
            att_msg, att_tokens = None, 0
            att_figures = tuple(replace(f, tokens=0, truncated=True) for f in att_figures)
        room -= att_tokens

        mem_msg, mem_tokens, mem_included, mem_total = self._memories(memories, room)
        room -= mem_tokens

        sum_msg = summary_message(summary) if summary is not None and summary.text.strip() else None
        sum_tokens = self.counter.count_openai_message(sum_msg) if sum_msg is not None else 0
        if sum_msg is not None and sum_tokens > room:
            sum_msg, sum_tokens = None, 0
        room -= sum_tokens

        selection = self._fill_history(units, anchor, room)
        # What the selection spent is exactly what its messages cost as sent (previews included).
        history_tokens = anchor_cost + room - selection.room

        history: list[dict[str, Any]] = []
        append = history.append
        shrunk = 0
        previews_of = selection.previews
        kept = selection.kept
        kept.reverse()  # chronological: the selection runs newest first
        if anchor is not None:
            kept.insert(bisect.bisect(kept, anchor), anchor)
        for index in kept:
            if index == anchor and anchor_out is not None:
                if att_msg is not None:
                    append(att_msg)
                append(anchor_out)
                continue
            unit = units[index].messages
            shortened = previews_of.get(index)
            if not shortened:
                for msg in unit:
                    append(msg.to_openai())
                continue
            by_position = {k: preview for k, preview, _ in shortened}
            for k, msg in enumerate(unit):
                preview = by_position.get(k)
                if preview is None:
                    append(msg.to_openai())
                else:
                    append(preview[0])
                    shrunk += 1
        out = [system]
        if mem_msg is not None:
            out.append(mem_msg)
        if sum_msg is not None:
            out.append(sum_msg)
        out.extend(history)
        if att_msg is not None and (anchor is None or anchor_out is None):
            out.append(att_msg)

        # A history read to its start knows every live message it may send (hidden ones, such as
        # fallback notices, were never candidates); otherwise the store's count is the best bound.
        known = len(tail.messages) if tail.reached_start or tail.total_messages is None else tail.total_messages
        report = PromptReport(
            model=self.counter.model,
            encoding=self.counter.encoding_name,
            approximate=self.counter.approximate,
            context_window=self.context_window,
            budget=self.budget,
            reserved_tokens=self.context_window - self.budget,
            system_tokens=system_tokens,
            tools_tokens=tools_tokens,
            memories_tokens=mem_tokens,
            summary_tokens=sum_tokens,
            history_tokens=history_tokens,
            attachments_tokens=att_tokens,
            attachments=att_figures,
            overhead_tokens=REPLY_PRIMING_TOKENS,
            messages_included=len(history),
            messages_dropped=max(0, known - len(history)),
            memories_included=mem_included,
            memories_dropped=mem_total - mem_included,
            summary_used=sum_msg is not None,
            summary_method=summary.method if sum_msg is not None and summary is not None else None,
            tools_mode=tools_mode,
            user_message_truncated=omitted > 0,
            omitted_tokens=omitted,
            tool_outputs_shrunk=shrunk,
            unsendable_dropped=len(grouping.unsendable),
        )
        if report.prompt_tokens > self.budget:
            # The selection above never overspends; this guards the invariant, not the input.
            raise InternalError(f"prompt of {report.prompt_tokens} tokens exceeds its budget of {self.budget}")
        return BuiltPrompt(messages=out, tools=native_tools, report=report)

    def _memories(self, memories: Sequence[Memory], room: int) -> tuple[dict[str, Any] | None, int, int, int]:
        texts = [t for t in (_memory_text(m) for m in memories) if t]
        kept: list[str] = []
        cost = 0
        for text in texts:
            # Exact count of the composed message: joined lines do not tokenise additively.
            trial = self.counter.count_openai_message(memories_message([*kept, text]))
            if trial <= room:
                kept.append(text)
                cost = trial
        if not kept:
            return None, 0, 0, len(texts)
        return memories_message(kept), cost, len(kept), len(texts)

    def _fill_history(self, units: Sequence[Unit], anchor: int | None, room: int) -> _Selection:
        """Units to send, newest first, as far as ``room`` goes (see :class:`_Selection`)."""
        count = self.counter.count_message
        candidates: list[int] = []
        full_costs: list[int] = []
        total = 0
        for i in range(len(units) - 1, -1, -1):
            if i == anchor:
                continue
            messages = units[i].messages
            # Most units are one message: skip the generator a sum() over them would build.
            cost = count(messages[0]) if len(messages) == 1 else sum(count(m) for m in messages)
            candidates.append(i)
            full_costs.append(cost)
            total += cost
        if total <= room:
            # Everything fits as is: no previews needed.
            return _Selection(candidates, {}, room - total)

        kept: list[int] = []
        previews: dict[int, list[tuple[int, Preview, int]]] = {}
        for i, need in zip(candidates, full_costs, strict=True):
            messages = units[i].messages
            shortened: list[tuple[int, Preview, int]] | None = None
            if messages[0].tool_calls:  # a tool group: its long outputs may go in as previews
                for k, msg in enumerate(messages):
                    preview = self._preview(msg) if msg.role == "tool" else None
                    if preview is not None:
                        full = count(msg)
                        if shortened is None:
                            shortened = []
                        shortened.append((k, preview, full))
                        need -= full - preview[1]
            if need > room:
                break  # older units stay out too: the window is one contiguous span
            kept.append(i)
            room -= need
            if shortened:
                previews[i] = shortened
        # Give full outputs back, newest first (the dict's insertion order), with whatever budget is left.
        for i, shortened in previews.items():
            still_short = []
            for k, preview, full in shortened:
                if full - preview[1] <= room:
                    room -= full - preview[1]
                else:
                    still_short.append((k, preview, full))
            previews[i] = still_short
        return _Selection(kept, previews, room)


# ---------------------------------------------------------------------- public API


def build_prompt(
    counter: TokenCounter,
    config: ContextConfig,
    context_window: int,
    system_prompt: str,
    history: Sequence[ChatMessage],
    tools: Sequence[Mapping[str, Any]] | None = None,
    memories: Sequence[Memory] = (),
    *,
    summary: ConversationSummary | None = None,
    native_tools: bool = True,
    preview_cache: dict[tuple[str, int], Preview | None] | None = None,
    tools_text: ToolsText = schema_text,
    attachments: Sequence[Attachment] = (),
) -> BuiltPrompt:
    """Build a prompt from an in-memory, chronological ``history`` (no store needed).

    Reads ``history`` backwards by index only as far as the budget goes. Pass the same
    ``preview_cache`` dict to repeated calls (or use :class:`ContextWindowManager`) so long tool
    outputs are not re-tokenised for their previews every time. ``context_window`` is in
    tokens; ``native_tools`` False counts the tools as the prompt text ``tools_text`` writes
    (the client sends them that way; :attr:`BuiltPrompt.tools` carries the schemas either way).

    Raises:
        ContextOverflowError: the system prompt, the tool schemas and a minimal cut of the
            newest user message do not fit the budget.
    """
    planner = _Planner(
        counter,
        config,
        context_window,
        native_tools=native_tools,
        preview_cache=preview_cache if preview_cache is not None else {},
        tools_text=tools_text,
    )
    _, _, system_tokens, tools_tokens, _ = planner.fixed_part(system_prompt, tools)
    tail = _tail_of_sequence(history, planner.scanner(planner.history_room(system_tokens, tools_tokens)))
    return planner.plan(system_prompt, tail, tools, memories, summary, attachments)


class ContextWindowManager:
    """Builds budgeted prompts for one model; keeps a small cache of tool-output previews.

    ``model_context_window`` is in tokens; ``reader`` is the default history source for
    conversation ids; at most ``preview_cache_size`` previews are kept. ``native_tools`` is the
    default tools mode (a build may override it: an endpoint can turn out to reject ``tools``)
    and ``tools_text`` writes the prompt description of tools that text mode counts.
    """

    def __init__(
        self,
        counter: TokenCounter,
        config: ContextConfig,
        model_context_window: int,
        *,
        reader: HistoryReader | None = None,
        native_tools: bool = True,
        preview_cache_size: int = 2048,
        tools_text: ToolsText = schema_text,
    ) -> None:
        self.counter = counter
        self.config = config
        self.context_window = model_context_window
        self.reader = reader
        self.native_tools = native_tools
        self.tools_text = tools_text
        self._previews: dict[tuple[str, int], Preview | None] = {}
        self._preview_cache_size = preview_cache_size

    @property
    def budget(self) -> int:
        """Tokens a prompt may use (:func:`prompt_budget`)."""
        return prompt_budget(self.config, self.context_window)

    def attachment_figures(
        self,
        system_prompt: str,
        tools: Sequence[Mapping[str, Any]] | None,
        user_text: str,
        attachments: Sequence[Attachment],
        *,
        native_tools: bool | None = None,
    ) -> tuple[AttachmentFigure, ...]:
        """How ``attachments`` will fit the prompt of a message ``user_text``: the same figures
        :meth:`build_prompt` reports for them (their section comes before memories and history,
        so nothing else changes them), known before the message is saved. Empty when the fixed
        parts alone overflow (the build will say so)."""
        if not attachments:
            return ()
        planner = self._planner(native_tools)
        try:
            _, _, system_tokens, tools_tokens, _ = planner.fixed_part(system_prompt, tools)
            room = planner.history_room(system_tokens, tools_tokens)
            _, anchor_cost, _ = planner._anchor(ChatMessage(role="user", content=user_text), room)
        except ContextOverflowError:
            return ()
        return attachments_section(self.counter, attachments, int((room - anchor_cost) * ATTACHMENT_SHARE))[1]

    def _planner(self, native_tools: bool | None) -> _Planner:
        """A planner for one build; ``native_tools`` None: the manager's tools mode."""
        return _Planner(
            self.counter,
            self.config,
            self.context_window,
            native_tools=self.native_tools if native_tools is None else native_tools,
            preview_cache=self._previews,
            tools_text=self.tools_text,
        )

    async def build_prompt(
        self,
        system_prompt: str,
        history: str | Sequence[ChatMessage],
        tools: Sequence[Mapping[str, Any]] | None = None,
        memories: Sequence[Memory] = (),
        *,
        reader: HistoryReader | None = None,
        summary: ConversationSummary | None = None,
        native_tools: bool | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> BuiltPrompt:
        """The prompt for the next LLM call.

        ``history`` is a conversation id (read through ``reader``, which also supplies the
        summary unless one is given) or an in-memory chronological sequence of messages.
        ``native_tools`` overrides the manager's tools mode for this build (None: the default).
        ``attachments``: files sent with the newest user message (their own budget section).
        Raises:
            ContextOverflowError: the parts that are never dropped do not fit.
            ValidationError: a conversation id was given with no reader.
            AppError: whatever the reader raises when history cannot be read.
        """
        if len(self._previews) > self._preview_cache_size:
            self._previews.clear()
        planner = self._planner(native_tools)
        _, _, system_tokens, tools_tokens, _ = planner.fixed_part(system_prompt, tools)
        scanner = planner.scanner(planner.history_room(system_tokens, tools_tokens))
        if isinstance(history, str):
            source = reader or self.reader
            if source is None:
                raise ValidationError("build_prompt was given a conversation id but no history reader")
            newest: tuple[list[ChatMessage], int] | None = None
            read_recent = getattr(source, "read_recent", None)
            if summary is None and read_recent is not None:
                summary, page = await read_recent(history, RECENT_PAGE)
                newest = (page, RECENT_PAGE)
            elif summary is None:
                summary = await source.get_summary(history)
            live_start = summary.covered_count if summary is not None else 0
            tail = await _tail_of_reader(source, history, scanner, live_start, newest)
        else:
            tail = _tail_of_sequence(history, scanner)
        return planner.plan(system_prompt, tail, tools, memories, summary, attachments)
