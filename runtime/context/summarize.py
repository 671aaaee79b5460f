"""When and how the start of a conversation is summarised away.

Policy (pure functions, tested on their own):

* :func:`water_marks`: the high-water mark is ``summarize_at`` x budget, the low-water mark
  ``summarize_to`` x budget.
* :func:`should_summarize`: history (live messages plus the current summary) at or above the
  high mark, and grown by at least one high-low gap since the last attempt. After a success the
  history sits near the low mark, so the next run comes one gap later; after a failure (or when
  nothing could be evicted) the history is unchanged, and the gap rule stops a retry on every turn.
* :func:`plan_eviction`: how many of the oldest messages to evict to get down to the low mark,
  ending at a turn boundary (before a user message) and never touching the current turn.

:class:`Summarizer` runs it: the summary is made first (the injected ``summarize_fn``, which the
agent wires to the LLM through Guard("llm"), given the previous summary plus the evicted span),
falling back to an extractive summary marked ``method="extractive"``; only then is the store's
atomic ``swap_fn`` called. If no summary can be made or the swap fails, history is unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from runtime.config import ContextConfig
from runtime.context.tokens import TokenCounter
from runtime.context.truncate import truncate_middle
from runtime.core.errors import AppError, describe
from runtime.core.messages import ChatMessage, ConversationSummary, HistoryReader

log = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "Summarise the conversation below for your own later reference. Keep every fact, decision, "
    "name, number, preference and open question; drop greetings and filler. If it starts with an "
    "earlier summary, fold that in. Write plain prose or short bullet points, no preamble."
)

SummarizeFn = Callable[[Sequence[ChatMessage]], Awaitable[str]]


class SwapFn(Protocol):
    """The store's atomic swap (``ConversationStore.summarize``): saves the summary and moves
    every message up to and including ``covers_up_to`` to the archive, all or nothing."""

    def __call__(
        self,
        conversation_id: str,
        summary: str,
        covers_up_to: str,
        *,
        method: str = "llm",
        token_count: int | None = None,
    ) -> Awaitable[object]:
        """Save ``summary`` and archive every message up to ``covers_up_to``, atomically."""
        ...


READ_PAGE = 512


@dataclass(frozen=True)
class WaterMarks:
    """The summarising thresholds in tokens: start at ``high``, summarise down to ``low``."""

    high: int
    low: int

    @property
    def gap(self) -> int:
        """Tokens between the marks: how much history must grow before another attempt."""
        return self.high - self.low


def water_marks(budget: int, summarize_at: float, summarize_to: float) -> WaterMarks:
    """High and low marks in tokens. A low mark not below the high one would summarise on
    every turn, so it is clamped to half the high mark."""
    high = max(1, int(budget * summarize_at))
    low = int(budget * summarize_to)
    if low >= high:
        low = high // 2
    return WaterMarks(high=high, low=max(0, low))


def should_summarize(history_tokens: int, marks: WaterMarks, floor: int | None) -> bool:
    """True when history reached the high mark and grew one gap past ``floor``, the history
    size right after the previous attempt (None: no attempt yet)."""
    if history_tokens < marks.high:
        return False
    if floor is None or history_tokens < floor:
        return True
    return history_tokens - floor >= marks.gap


def plan_eviction(messages: Sequence[ChatMessage], counts: Sequence[int], target_tokens: int) -> int:
    """How many of the oldest ``messages`` to evict so the rest costs at most ``target_tokens``.

    The evicted span ends right before a user message (a turn boundary, so no tool call is
    separated from its results) and never includes the newest user message. When no boundary
    reaches the target, evicts up to the last allowed boundary; 0 means nothing can go.
    """
    boundaries = [i for i, m in enumerate(messages) if m.role == "user" and i > 0]
    if not boundaries:
        return 0
    newest_user = max(i for i, m in enumerate(messages) if m.role == "user")
    remaining = sum(counts)
    evicted_to = 0
    for b in boundaries:
        if b > newest_user:
            break
        remaining -= sum(counts[evicted_to:b])
        evicted_to = b
        if remaining <= target_tokens:
            break
    return evicted_to


def summary_input(messages: Sequence[ChatMessage], previous: ConversationSummary | None) -> list[ChatMessage]:
    """What ``summarize_fn`` gets: the previous summary (as a system message) and the span."""
    if previous is None or not previous.text.strip():
        return list(messages)
    return [ChatMessage(role="system", content=f"Earlier summary:\n{previous.text}"), *messages]


def summary_request(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """An OpenAI-format request that asks an LLM to summarise ``messages`` (for summarize_fn)."""
    lines = []
    for msg in messages:
        who = msg.role if msg.role != "tool" else f"tool result ({msg.name or msg.tool_call_id or 'tool'})"
        text = msg.content
        if msg.tool_calls:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in msg.tool_calls)
            text = f"{text}\n[called {calls}]".strip()
        lines.append(f"{who}: {text}")
    return [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": "\n\n".join(lines)}]


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s")


def _first_sentence(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    head = _SENTENCE_END.split(text, maxsplit=1)[0]
    return head if len(head) <= limit else head[:limit].rstrip() + "…"


def extractive_summary(counter: TokenCounter, messages: Sequence[ChatMessage], max_tokens: int) -> str:
    """A summary made without an LLM: the earlier summary, then the first sentence of each
    user and assistant message; cut in the middle to ``max_tokens``."""
    lines = ["(Extractive summary made without the LLM: first sentences of each message.)"]
    for msg in messages:
        if msg.role == "system":
            lines.append(msg.content.strip())
        elif msg.role in ("user", "assistant") and msg.content.strip():
            lines.append(f"- {msg.role}: {_first_sentence(msg.content)}")
        elif msg.tool_calls:
            lines.append(f"- assistant called {', '.join(c.name for c in msg.tool_calls)}")
    text = "\n".join(lines)
    cut = truncate_middle(counter, text, max_tokens)
    return cut[0] if cut is not None else ""


@dataclass(frozen=True)
class SummarizeResult:
    """What one :meth:`Summarizer.maybe_summarize` run did.

    ``history_tokens_before``/``_after`` include the summary; ``evicted`` counts the messages
    moved to the archive; ``error`` says why a ``failed`` run failed.
    """

    status: Literal["summarized", "failed", "nothing_to_evict"]
    history_tokens_before: int
    history_tokens_after: int
    evicted: int = 0
    summary: ConversationSummary | None = None
    error: str | None = None


class Summarizer:
    """Applies the policy for one budget; remembers, per conversation, the size after the last
    attempt (in memory: after a restart at most one extra attempt happens)."""

    def __init__(
        self,
        counter: TokenCounter,
        config: ContextConfig,
        budget: int,
        *,
        reader: HistoryReader,
        summarize_fn: SummarizeFn,
        swap_fn: SwapFn,
        extractive_fallback: bool = True,
        max_summary_tokens: int | None = None,
    ) -> None:
        self.counter = counter
        self.marks = water_marks(budget, config.summarize_at, config.summarize_to)
        self.reader = reader
        self.summarize_fn = summarize_fn
        self.swap_fn = swap_fn
        self.extractive_fallback = extractive_fallback
        # A quarter of the low mark keeps the summary from eating the room it frees.
        self.max_summary_tokens = max_summary_tokens or max(64, self.marks.low // 4)
        self._floors: dict[str, int] = {}

    async def _read_all(self, conversation_id: str) -> list[ChatMessage]:
        pages: list[list[ChatMessage]] = []
        before: int | None = None
        while True:
            page = await self.reader.read_tail(conversation_id, READ_PAGE, before_seq=before)
            if page:
                pages.append(page)
            # The store numbers messages across the whole conversation (archived ones
            # included), so only a short or empty page marks the start of live history.
            if len(page) < READ_PAGE or page[0].seq in (None, 0):
                break
            before = page[0].seq
        return [m for page in reversed(pages) for m in page]

    async def maybe_summarize(self, conversation_id: str, *, force: bool = False) -> SummarizeResult | None:
        """Summarise if the policy says so; None when it does not. ``force`` (``/summarize --force``)
        summarises below the threshold too: the older half of the history, whole turns, goes into
        the summary. Never raises for a failed summary or swap (the result says ``failed``); read
        errors from the store propagate."""
        previous = await self.reader.get_summary(conversation_id)
        messages = await self._read_all(conversation_id)
        counts = [self.counter.count_message(m) for m in messages]
        prev_tokens = self._summary_tokens(previous)
        total = sum(counts) + prev_tokens
        if not force and not should_summarize(total, self.marks, self._floors.get(conversation_id)):
            return None

        target = max(0, self.marks.low - self.max_summary_tokens)
        if force:
            target = min(target, total // 2)
        k = plan_eviction(messages, counts, target)
        if k == 0:
            self._floors[conversation_id] = total
            return SummarizeResult("nothing_to_evict", total, total)
        evicted = messages[:k]

        summary = await self._make_summary(evicted, previous)
        if summary is None:
            self._floors[conversation_id] = total
            return SummarizeResult("failed", total, total, error="no summary could be made")
        try:
            await self.swap_fn(
                conversation_id,
                summary.text,
                summary.covers_up_to,
                method=summary.method,
                token_count=summary.token_count,
            )
        except AppError as exc:
            log.warning("summary swap failed for %s: %s", conversation_id, describe(exc))
            self._floors[conversation_id] = total
            return SummarizeResult("failed", total, total, error=describe(exc))
        after = sum(counts[k:]) + (summary.token_count or 0)
        self._floors[conversation_id] = after
        return SummarizeResult("summarized", total, after, evicted=k, summary=summary)

    def _summary_tokens(self, summary: ConversationSummary | None) -> int:
        if summary is None:
            return 0
        return summary.token_count if summary.token_count is not None else self.counter.count_text(summary.text)

    async def _make_summary(
        self, evicted: Sequence[ChatMessage], previous: ConversationSummary | None
    ) -> ConversationSummary | None:
        inputs = summary_input(evicted, previous)
        method: Literal["llm", "extractive"] = "llm"
        text = ""
        try:
            text = (await self.summarize_fn(inputs)).strip()
        except AppError as exc:
            log.warning(
                "LLM summary failed (%s); %s",
                describe(exc),
                "using extractive summary" if self.extractive_fallback else "history unchanged",
            )
        except Exception:  # an injected callback's bug must not lose the turn; logged in full
            log.exception("summarize_fn raised")
        if text:
            cut = truncate_middle(self.counter, text, self.max_summary_tokens)
            text = cut[0] if cut is not None else ""
        if not text:
            if not self.extractive_fallback:
                return None
            method = "extractive"
            text = extractive_summary(self.counter, inputs, self.max_summary_tokens)
            if not text:
                return None
        covered = (previous.covered_count if previous is not None else 0) + len(evicted)
        return ConversationSummary(
            text=text,
            covers_up_to=evicted[-1].id,
            covered_count=covered,
            method=method,
            token_count=self.counter.count_text(text),
        )
