"""What gets remembered after a turn: a small, documented rule set over the user's text.

The rules, applied sentence by sentence to what the user wrote (never to the assistant's
reply, which would let the model write its own memories):

1. Explicit requests are always kept: "remember (that) …", "please remember …",
   "don't forget (that) …", "note that …", "keep in mind (that) …". The request words are
   stripped; the rest is stored as type ``explicit``.
2. First-person preferences: "I like / love / prefer / enjoy / hate / dislike / can't stand
   …", "my favourite/favorite …". Stored as ``preference``.
3. First-person facts: "my <thing> is/are/was …", "my <thing> is called …", "I am / I'm
   a …", "I live / work / study …", "I have …", "I was born …", "I'm allergic …",
   "call me …". Stored as ``fact``.

Never kept: questions, requests to the assistant ("can you…", "I want you to…", "I need
you to…"), hedged or transient states ("I'm not sure", "I'm tired", "I think"), sentences
shorter than 3 words or longer than :data:`MAX_CHARS`, and anything that looks like a
secret (passwords, API keys, tokens), even inside an explicit request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.memory.records import EXPLICIT, FACT, PREFERENCE

MAX_CHARS = 300
MIN_WORDS = 3

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_EXPLICIT = re.compile(
    r"^(?:please\s+)?(?:remember|don'?t\s+forget|do\s+not\s+forget|note|keep\s+in\s+mind)"
    r"(?:\s+that)?[\s,:]+(?P<rest>.+)$",
    re.IGNORECASE,
)
_PREFERENCE = re.compile(
    r"^(?:i\s+(?:really\s+|do\s+not\s+|don'?t\s+)?(?:like|love|prefer|enjoy|hate|dislike|adore)\b"
    r"|i\s+can'?t\s+stand\b|my\s+fav(?:ou)?rite\b)",
    re.IGNORECASE,
)
_FACT = re.compile(
    r"^(?:my\s+[\w' -]{1,40}?\s+(?:is|are|was|were|has|have)\b"
    r"|i\s+am\s+(?:a|an|from|\d|allergic|vegetarian|vegan|married|based)\b"
    r"|i'?m\s+(?:a|an|from|\d|allergic|vegetarian|vegan|married|based)\b"
    r"|i\s+(?:live|work|study|studied|grew\s+up|was\s+born|have|own|speak|use|go\s+by)\b"
    r"|call\s+me\b)",
    re.IGNORECASE,
)
_NOT_SALIENT = re.compile(
    r"^(?:can|could|would|will|should|do|does|did|what|why|how|when|where|who|which|is|are)\b"
    r"|\bi\s+(?:want|need|would\s+like)\s+you\s+to\b"
    r"|\bi'?m\s+not\s+sure\b|\bi\s+am\s+not\s+sure\b|^i\s+think\b|^maybe\b"
    r"|^i\s+have\s+(?:a\s+question|no\s+idea|to\b)",
    re.IGNORECASE,
)
_SECRET = re.compile(
    r"password|passwd|passphrase|api[\s_-]?key|secret|token|\bpin\b|credit\s+card|\biban\b"
    r"|\bsk-[A-Za-z0-9]{8,}|\b[A-Za-z0-9+/]{32,}={0,2}",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Salient:
    """A statement worth remembering, the type it is stored as, and the rule that chose it."""

    content: str
    type: str
    rule: str


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _clean(sentence: str) -> str:
    return sentence.strip().strip("\"'“”").rstrip(" .!;,").strip()


def classify(sentence: str) -> Salient | None:
    """The rule a single sentence matches (rules 1-3 of this module), or None if it is not kept."""
    text = _clean(sentence)
    if not text or sentence.strip().endswith("?") or len(text) > MAX_CHARS:
        return None
    if _SECRET.search(text):
        return None
    explicit = _EXPLICIT.match(text)
    if explicit:
        rest = _clean(explicit.group("rest"))
        if len(rest.split()) >= 2:
            return Salient(rest[0].upper() + rest[1:], EXPLICIT, "explicit request")
        return None
    if len(text.split()) < MIN_WORDS or _NOT_SALIENT.search(text):
        return None
    if _PREFERENCE.match(text):
        return Salient(text, PREFERENCE, "first-person preference")
    if _FACT.match(text):
        return Salient(text, FACT, "first-person fact")
    return None


def salient_statements(user_text: str) -> list[Salient]:
    """Everything in one user message the rules say to remember, in order, without repeats."""
    seen: set[str] = set()
    found: list[Salient] = []
    for sentence in _sentences(user_text):
        item = classify(sentence)
        if item is not None and item.content.casefold() not in seen:
            seen.add(item.content.casefold())
            found.append(item)
    return found
