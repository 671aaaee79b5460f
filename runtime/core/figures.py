"""Per-reply figures (issue 17, item 4): tokens, time to first token, total time, speed and cost.

The agent computes one :class:`ReplyFigures` when it saves a model's reply and stores it in the
reply's metadata under :data:`FIGURES_KEY` (so the figures survive reopening the conversation)
and in the ``AssistantSaved`` event (so ``holdfast chat --json`` and the HTTP stream carry the
same object). Faces render it with :func:`figures_line`; a conversation's total is the sum of
its replies' figures (:class:`ConversationTotals`).

Units: tokens are counts, times milliseconds, speed tokens per second, cost in the price
table's currency (``[pricing].currency``). ``estimated`` is True when any of the counts were
counted here because the endpoint reported none (issue 16's honest figures).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: The key of a reply message's metadata that holds its figures (a :meth:`ReplyFigures.to_dict`).
FIGURES_KEY = "figures"


@dataclass(frozen=True)
class ReplyFigures:
    """The figures of one reply (every model call of its turn summed, tool steps included).

    ``ttft_ms``: from the turn's start (the user's message) to the model's first streamed token,
    None when nothing streamed. ``tokens_per_second``: completion tokens over the time the model
    spent streaming them (first token to last, summed over steps), None when that time is zero.
    ``cost``: None when ``[pricing]`` has no price for ``model``.
    """

    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    total_ms: float
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    model: str = ""
    cost: float | None = None
    currency: str = "USD"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (what the metadata and the events hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplyFigures | None:
        """Inverse of :meth:`to_dict`; None when ``data`` is not a figures object (an older or
        damaged message: no footer rather than a crash)."""
        try:
            return cls(
                prompt_tokens=int(data["prompt_tokens"]),
                completion_tokens=int(data["completion_tokens"]),
                estimated=bool(data["estimated"]),
                total_ms=float(data["total_ms"]),
                ttft_ms=_optional_float(data.get("ttft_ms")),
                tokens_per_second=_optional_float(data.get("tokens_per_second")),
                model=str(data.get("model") or ""),
                cost=_optional_float(data.get("cost")),
                currency=str(data.get("currency") or "USD"),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def of_message(cls, metadata: Mapping[str, Any]) -> ReplyFigures | None:
        """The figures stored in a message's ``metadata``, or None if it has none."""
        raw = metadata.get(FIGURES_KEY)
        return cls.from_dict(raw) if isinstance(raw, Mapping) else None


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ConversationTotals:
    """A conversation's replies summed: ``replies`` counted, their tokens, and ``cost`` (None
    when no reply had a price; ``priced`` says how many had one). ``estimated``: some counts
    were estimated. ``currency``: the currency of the priced replies."""

    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    cost: float | None = None
    priced: int = 0
    currency: str = "USD"

    @classmethod
    def of(cls, figures: Iterable[ReplyFigures]) -> ConversationTotals:
        """The totals of these replies' figures."""
        replies = prompt = completion = priced = 0
        estimated = False
        cost: float | None = None
        currency = "USD"
        for f in figures:
            replies += 1
            prompt += f.prompt_tokens
            completion += f.completion_tokens
            estimated = estimated or f.estimated
            if f.cost is not None:
                cost = (cost or 0.0) + f.cost
                priced += 1
                currency = f.currency
        return cls(replies, prompt, completion, estimated, cost, priced, currency)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def format_cost(cost: float, currency: str = "USD") -> str:
    """``$0.0042`` (USD) or ``0.0042 EUR``: four decimals under one unit, two above."""
    digits = 2 if abs(cost) >= 1 else 4
    amount = f"{cost:.{digits}f}"
    return f"${amount}" if currency.upper() == "USD" else f"{amount} {currency}"


def format_tokens(count: int) -> str:
    """``950``, ``12.3k``, ``1.2M``: a token count short enough for a footer."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def _seconds(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def figures_line(figures: ReplyFigures) -> str:
    """One short line for under a reply, e.g. ``819 in · 17 out · first 120 ms · 1.4 s · 85 tok/s
    · $0.0003``; ``out est.`` marks counts estimated here because the endpoint reported none
    (typically under 65 characters, so it fits an 80-column terminal beside the reply's margin)."""
    parts = [
        f"{format_tokens(figures.prompt_tokens)} in",
        f"{format_tokens(figures.completion_tokens)} out" + (" est." if figures.estimated else ""),
    ]
    if figures.ttft_ms is not None:
        parts.append(f"first {_seconds(figures.ttft_ms)}")
    parts.append(_seconds(figures.total_ms))
    if figures.tokens_per_second is not None:
        parts.append(f"{figures.tokens_per_second:.0f} tok/s")
    if figures.cost is not None:
        parts.append(format_cost(figures.cost, figures.currency))
    return " · ".join(parts)


def totals_line(totals: ConversationTotals) -> str:
    """A conversation's total for a list row: its cost (``$0.0123``), "" when none of its
    replies had a price (its tokens alone would crowd a narrow sidebar's row)."""
    return format_cost(totals.cost, totals.currency) if totals.cost is not None else ""
