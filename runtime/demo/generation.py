"""From the demo model's decision to what one choice sends: limits applied, finish reason set.

:func:`generate` takes a :class:`~runtime.demo.model.DemoReply` (the whole answer the model
decided on) and the request's limits, and returns the :class:`Generation` that is actually
sent, cut the way a real server cuts (OpenAI's semantics):

* ``stop`` sequences end the text before the first one found (not included), with
  ``finish_reason: "stop"``;
* ``max_tokens`` / ``max_completion_tokens`` (the tightest) cut the reply after that many tokens,
  with ``finish_reason: "length"``; a tool call cut this way keeps only the start of its
  arguments (invalid JSON, as on OpenAI); reasoning, when present, is spent first;
* a ``context_window`` (the ``truncating`` profile) holds prompt and reply together: a prompt
  too long for it is cut to leave a quarter of the window for the reply, and the reply is
  limited to what is left.

A token is what the demo server counts: one streamed piece of text or reasoning
(:func:`~runtime.demo.model.split_words`), and :func:`~runtime.demo.model.count_tokens` of a
tool call's name and arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from runtime.demo import model as demo_model


@dataclass(frozen=True)
class Generation:
    """One choice as it is sent.

    ``reasoning`` and ``pieces`` are the streamed pieces of the reasoning and of the text (they
    join back to the whole); ``text`` is None when the reply is tool calls. Token counts are
    the demo server's (see the module docstring).
    """

    reasoning: tuple[str, ...]
    pieces: tuple[str, ...]
    text: str | None
    tool_calls: tuple[demo_model.DemoToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def reasoning_text(self) -> str | None:
        """The reasoning as one string, or None when the profile does not reason."""
        return "".join(self.reasoning) if self.reasoning else None


def _call_cost(call: demo_model.DemoToolCall) -> int:
    return demo_model.count_tokens(call.name) + demo_model.count_tokens(call.arguments)


def _cut_calls(
    calls: tuple[demo_model.DemoToolCall, ...], budget: int | None
) -> tuple[tuple[demo_model.DemoToolCall, ...], int, bool]:
    """(calls kept, tokens spent, whether the budget cut them)."""
    kept: list[demo_model.DemoToolCall] = []
    spent = 0
    for call in calls:
        cost = _call_cost(call)
        if budget is None or spent + cost <= budget:
            kept.append(call)
            spent += cost
            continue
        room = budget - spent - demo_model.count_tokens(call.name)
        if room >= 0:
            kept.append(replace(call, arguments=demo_model.truncate_tokens(call.arguments, room)))
        return tuple(kept), budget, True
    return tuple(kept), spent, False


def _first_stop(text: str, stops: tuple[str, ...]) -> int:
    """Index of the earliest stop sequence in ``text``, or -1."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else -1


def generate(
    reply: demo_model.DemoReply,
    *,
    limit: int | None = None,
    stops: tuple[str, ...] = (),
    reasoning: str | None = None,
    context_window: int = 0,
) -> Generation:
    """The choice sent for ``reply`` under the request's limits.

    Args:
        reply: what the demo model decided.
        limit: most completion tokens (``max_tokens``), or None for no limit.
        stops: stop sequences; the text ends before the first one found.
        reasoning: text "thought" before the answer (reasoning profiles), or None.
        context_window: tokens shared by prompt and reply (0: unlimited).

    Returns:
        The :class:`Generation`, with ``finish_reason`` ``"length"`` when a limit cut it,
        else the reply's own (``"stop"`` or ``"tool_calls"``).
    """
    prompt_tokens = reply.prompt_tokens
    if context_window > 0:
        prompt_tokens = min(prompt_tokens, context_window - max(1, context_window // 4))
        room = context_window - prompt_tokens
        limit = room if limit is None else min(limit, room)
    thought = tuple(demo_model.split_words(reasoning)) if reasoning else ()
    if limit is not None and len(thought) >= limit:
        return Generation(thought[:limit], (), "", (), "length", prompt_tokens, limit)
    spent = len(thought)
    budget = None if limit is None else limit - spent
    if reply.tool_calls:
        calls, used, cut = _cut_calls(reply.tool_calls, budget)
        if calls:
            reason = "length" if cut else reply.finish_reason
            return Generation(thought, (), None, calls, reason, prompt_tokens, spent + used)
        return Generation(thought, (), "", (), "length", prompt_tokens, spent + used)
    text = reply.text or ""
    at = _first_stop(text, stops) if stops else -1
    if at >= 0:
        text = text[:at]
    pieces = demo_model.split_words(text)
    reason = "stop"
    if budget is not None and len(pieces) > budget:
        pieces, reason = pieces[:budget], "length"
    # The plain answer is exactly what the stream sends, piece by piece.
    return Generation(thought, tuple(pieces), "".join(pieces), (), reason, prompt_tokens, spent + len(pieces))
