"""Test support: an in-memory HistoryReader with the store's swap semantics, and history builders."""

from __future__ import annotations

from collections.abc import Sequence

from runtime.core.messages import ChatMessage, ConversationSummary, ToolCall


class MemoryHistory:
    """Implements runtime.core.messages.HistoryReader over lists, plus the store's atomic summary swap,
    with the Redis store's numbering: ``seq`` counts every message ever appended (archived ones
    included) and a summary's ``covered_count`` is the number archived.

    Records how many messages reads returned so tests can check reads stay bounded.
    """

    def __init__(self) -> None:
        self.messages: dict[str, list[ChatMessage]] = {}
        self.archived: dict[str, int] = {}
        self.summaries: dict[str, ConversationSummary] = {}
        self.messages_read = 0
        self.reads = 0

    def append(self, conversation_id: str, message: ChatMessage) -> ChatMessage:
        live = self.messages.setdefault(conversation_id, [])
        stored = message.with_updates(seq=self.archived.get(conversation_id, 0) + len(live))
        live.append(stored)
        return stored

    async def read_tail(self, conversation_id: str, limit: int, *, before_seq: int | None = None) -> list[ChatMessage]:
        live = self.messages.get(conversation_id, [])
        archived = self.archived.get(conversation_id, 0)
        end = len(live) if before_seq is None else max(0, min(before_seq - archived, len(live)))
        page = live[max(0, end - limit) : end]
        self.reads += 1
        self.messages_read += len(page)
        return list(page)

    async def get_summary(self, conversation_id: str) -> ConversationSummary | None:
        return self.summaries.get(conversation_id)

    async def summarize(
        self,
        conversation_id: str,
        summary: str,
        covers_up_to: str,
        *,
        method: str = "llm",
        token_count: int | None = None,
    ) -> None:
        live = self.messages[conversation_id]
        cut = next(i for i, m in enumerate(live) if m.id == covers_up_to) + 1
        self.archived[conversation_id] = live[cut - 1].seq + 1
        self.messages[conversation_id] = live[cut:]
        self.summaries[conversation_id] = ConversationSummary(
            text=summary,
            covers_up_to=covers_up_to,
            covered_count=self.archived[conversation_id],
            method=method,
            token_count=token_count,
        )  # type: ignore[arg-type]


def tool_turn(n: int, *, user: str = "", calls: int = 1, output: str = "", answer: str = "") -> list[ChatMessage]:
    """One turn: a user message, an assistant tool call step with ``calls`` parallel calls and
    their results, and a final answer."""
    ids = [f"call_{n}_{k}" for k in range(calls)]
    msgs = [
        ChatMessage(role="user", content=user or f"#{n} please look up item {n}"),
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=tuple(ToolCall(id=i, name="lookup", arguments=f'{{"item": {n}}}') for i in ids),
        ),
    ]
    msgs += [ChatMessage(role="tool", content=output or f"item {n} is blue", tool_call_id=i) for i in ids]
    msgs.append(ChatMessage(role="assistant", content=answer or f"#{n} item {n} is blue."))
    return msgs


def chat_turn(n: int, words: int = 20) -> list[ChatMessage]:
    return [
        ChatMessage(role="user", content=f"#{n} " + " ".join(f"question{n}" for _ in range(words))),
        ChatMessage(role="assistant", content=f"#{n} " + " ".join(f"answer{n}" for _ in range(words))),
    ]


def check_tool_pairing(messages: Sequence[dict]) -> None:
    """Assert every assistant tool call is answered right after it and no tool result is orphaned."""
    i = 0
    while i < len(messages):
        msg = messages[i]
        assert msg["role"] != "tool", f"orphan tool result at {i}: {msg}"
        if msg.get("tool_calls"):
            wanted = {c["id"] for c in msg["tool_calls"]}
            got = set()
            i += 1
            while i < len(messages) and messages[i]["role"] == "tool":
                assert messages[i]["tool_call_id"] in wanted - got, f"unexpected tool result at {i}"
                got.add(messages[i]["tool_call_id"])
                i += 1
            assert got == wanted, f"tool calls {wanted - got} have no results"
            continue
        i += 1
