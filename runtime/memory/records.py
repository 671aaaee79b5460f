"""The memory table's Arrow schema, its naming rule, and the typed results callers get.

Typed columns (not a metadata blob) carry everything a filter needs, so LanceDB can
prefilter and index them; ``metadata`` is free-form JSON for the rest. A table's name
carries the embedding model and dimension: vectors of different models never mix.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

TABLE_PREFIX = "memories__"
#: Field metadata that makes ``id`` the table's (unenforced) primary key. With it, Lance
#: records the keys a ``merge_insert`` inserted and detects two writers (processes or
#: handles) inserting the same new id as a commit conflict, so the later one retries and
#: updates the row instead of committing a duplicate; without it both inserts succeed.
PRIMARY_KEY_METADATA = {"lance-schema:unenforced-primary-key": "true"}

#: Memory types the runtime writes.
FACT = "fact"
PREFERENCE = "preference"
EXPLICIT = "explicit"
CONVERSATION_SUMMARY = "conversation_summary"


def table_name(table_suffix: str) -> str:
    """``memories__<table_suffix>``: the table of one embedding model (the suffix names model and dimension)."""
    return f"{TABLE_PREFIX}{table_suffix}"


def has_primary_key(table_schema: pa.Schema) -> bool:
    """True if ``id`` is marked as the primary key (tables made before the marker are not)."""
    meta = table_schema.field("id").metadata or {}
    # ``set_unenforced_primary_key`` writes the positional form, ``schema()`` the flag form.
    return b"lance-schema:unenforced-primary-key:position" in meta or meta.get(
        b"lance-schema:unenforced-primary-key", b""
    ).lower() in (b"true", b"1")


def schema(ndims: int) -> pa.Schema:
    """The Arrow schema of a memory table with ``ndims``-d float32 vectors; ``id`` is its primary key."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False, metadata=PRIMARY_KEY_METADATA),
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("conversation_id", pa.string(), nullable=False),
            pa.field("type", pa.string(), nullable=False),
            pa.field("content", pa.string(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), ndims), nullable=False),
        ]
    )


def normalise(content: str) -> str:
    """The form two texts must share to count as the same fact (case, spacing, unicode)."""
    return " ".join(unicodedata.normalize("NFKC", content).casefold().split())


def content_hash(content: str) -> str:
    """sha256 hex of the normalised text (:func:`normalise`): equal for texts that count as the same fact."""
    return hashlib.sha256(normalise(content).encode("utf-8")).hexdigest()


def memory_id(user_id: str, content: str) -> str:
    """Stable id: the same fact for the same user is the same row, whoever writes it."""
    digest = hashlib.sha256()
    digest.update(user_id.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(normalise(content).encode("utf-8"))
    return digest.hexdigest()[:32]


def summary_id(user_id: str, conversation_id: str) -> str:
    """One summary row per conversation: a newer summary replaces the older one."""
    digest = hashlib.sha256(f"summary\x00{user_id}\x00{conversation_id}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Memory:
    """One stored memory as callers see it; ``score`` is cosine similarity (None when listed)."""

    id: str
    user_id: str
    conversation_id: str
    type: str
    content: str
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float | None = None

    def formatted(self) -> str:
        """The spec's prompt form: ``[Memory from {timestamp}]: {content}``."""
        return f"[Memory from {self.created_at.strftime('%Y-%m-%d %H:%M')}]: {self.content}"

    @classmethod
    def from_row(cls, row: dict[str, Any], score: float | None = None) -> Memory:
        """A :class:`Memory` from a LanceDB row (a naive ``created_at`` is taken as UTC).

        Unparsable or non-object ``metadata`` becomes ``{}``.

        Raises:
            KeyError: a required column is missing from ``row``.
        """
        created = row["created_at"]
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        try:
            meta = json.loads(row.get("metadata") or "{}")
        except json.JSONDecodeError:
            meta = {}
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            conversation_id=row["conversation_id"],
            type=row["type"],
            content=row["content"],
            created_at=created,
            metadata=meta if isinstance(meta, dict) else {},
            score=score,
        )


@dataclass(frozen=True)
class MemoryRecall:
    """What a recall returns. ``degraded`` is True when memory could not be searched
    properly (store or embedding provider down, or the lexical stand-in answered);
    the turn goes on either way and the UI shows a "memory offline" badge."""

    memories: tuple[Memory, ...] = ()
    degraded: bool = False
    reason: str = ""
    source: str = "vector"  # vector | lexical | none

    def __iter__(self) -> Iterator[Memory]:
        return iter(self.memories)

    def __len__(self) -> int:
        return len(self.memories)

    @property
    def offline(self) -> bool:
        """True when the memory store itself could not be searched (``reason`` says why): an
        empty answer then means "unknown", not "nothing remembered"."""
        return self.degraded and self.source == "none" and bool(self.reason)

    def formatted(self) -> list[str]:
        """Each memory in the spec's prompt form (``get_context_memories``): ``[Memory from …]: …``."""
        return [m.formatted() for m in self.memories]


@dataclass(frozen=True)
class PendingWrite:
    """A memory write the store could not apply yet (kept in the write queue)."""

    op: str  # store | forget
    user_id: str
    id: str
    conversation_id: str = ""
    content: str = ""
    type: str = FACT
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    #: This queue entry's own id (random hex), so every process sharing the queue file removes
    #: exactly the entries it applied; not part of equality.
    qid: str = field(default_factory=lambda: secrets.token_hex(8), compare=False)

    def to_json(self) -> str:
        """One JSON line for the write queue's file (inverse of :meth:`from_json`)."""
        return json.dumps(
            {
                "qid": self.qid,
                "op": self.op,
                "user_id": self.user_id,
                "id": self.id,
                "conversation_id": self.conversation_id,
                "content": self.content,
                "type": self.type,
                "metadata": self.metadata,
                "created_at": self.created_at,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> PendingWrite:
        """Inverse of :meth:`to_json`; optional fields default.

        Raises:
            json.JSONDecodeError: ``line`` is not JSON.
            KeyError: ``op``, ``user_id`` or ``id`` is missing.
        """
        data = json.loads(line)
        # An entry written before queue ids existed gets one derived from its line: stable, so
        # every process reading the file gives it the same id.
        qid = str(data.get("qid") or hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()[:16])
        return cls(
            qid=qid,
            op=str(data["op"]),
            user_id=str(data["user_id"]),
            id=str(data["id"]),
            conversation_id=str(data.get("conversation_id", "")),
            content=str(data.get("content", "")),
            type=str(data.get("type", FACT)),
            metadata=dict(data.get("metadata") or {}),
            created_at=float(data.get("created_at", 0.0)),
        )
