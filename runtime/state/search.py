"""Search of a user's conversations by title and message text (Ctrl+F in the TUI).

A scan of the stored history, not an index: every word of the query must occur (case-insensitive,
as a substring, so "break" finds "breakers") in the title or in one message. A title match counts
3, a message holding the whole query as a phrase 2, one holding every word 1; a conversation's
score is its title's plus its best message's, and the hit points at that message (the newest of
equal ones). Why a scan and not LanceDB full-text or the memory index: the memory index holds
what was *remembered* (not every message, none of the replies), a LanceDB full-text index would be
a second copy of every message to keep in step with Redis (edits, deletes, retention, the journal
while Redis is out); the history is already in Redis, a user's conversations are read in one
round trip each, and the result is exact and current. Hidden messages (fallback notices, partial
replies of a stream that broke off) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.core.messages import ChatMessage

_WORD = re.compile(r"\w+")
#: Characters of context either side of the first matched word in a snippet.
SNIPPET_CONTEXT = 30


@dataclass(frozen=True)
class SearchHit:
    """One conversation matching a search: its best message (None: the title alone matched), a
    one-line snippet around the match, and the score (higher is better; see the module doc)."""

    conversation_id: str
    title: str
    score: float
    message_id: str | None = None
    seq: int | None = None
    snippet: str = ""
    updated_at: float = 0.0


def terms(query: str) -> list[str]:
    """The query's words, lower-cased (an empty list for a query of no words)."""
    return [w.lower() for w in _WORD.findall(query)]


def _score(words: Sequence[str], phrase: str, text: str) -> int:
    low = text.lower()
    if not words or not all(w in low for w in words):
        return 0
    return 2 if phrase and phrase in " ".join(low.split()) else 1


def snippet(text: str, words: Sequence[str]) -> str:
    """One line of ``text`` around the first of ``words`` it holds (``…`` where it was cut)."""
    flat = " ".join(text.split())
    low = flat.lower()
    at = min((low.find(w) for w in words if w in low), default=0)
    start, end = max(0, at - SNIPPET_CONTEXT), min(len(flat), at + SNIPPET_CONTEXT * 2)
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


def match(
    query: str, conversation_id: str, title: str, messages: Sequence[ChatMessage], updated_at: float = 0.0
) -> SearchHit | None:
    """How one conversation (``messages`` oldest first) matches ``query``; None if it does not."""
    words = terms(query)
    if not words:
        return None
    phrase = " ".join(query.lower().split())
    title_score = 3 if _score(words, phrase, title) else 0
    best: ChatMessage | None = None
    best_score = 0
    for message in messages:
        if message.role not in ("user", "assistant") or message.metadata.get("hidden"):
            continue
        found = _score(words, phrase, message.content)
        if found and found >= best_score:  # >=: the newest of equal matches
            best, best_score = message, found
    if not title_score and best is None:
        return None
    return SearchHit(
        conversation_id=conversation_id,
        title=title,
        score=float(title_score + best_score),
        message_id=best.id if best is not None else None,
        seq=best.seq if best is not None else None,
        snippet=snippet(best.content, words) if best is not None else "",
        updated_at=updated_at,
    )


def rank(hits: Sequence[SearchHit | None]) -> list[SearchHit]:
    """The hits, best first (score, then the most recently updated conversation)."""
    return sorted((h for h in hits if h is not None), key=lambda h: (h.score, h.updated_at), reverse=True)
