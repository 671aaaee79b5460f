"""Conversation history in Redis: append-only lists, atomic Lua scripts, one slot per conversation.

Keys of conversation ``C`` (all tagged ``{conv:C}``, see :mod:`runtime.state.keys`):

* ``meta``     hash: id, user_id, title, system_prompt, metadata (JSON), created_at,
               updated_at, next_seq (messages ever appended), archived (how many moved out)
* ``messages`` list: the live messages, oldest first, each a JSON object whose ``seq`` is
               its position in the whole conversation (``seq = archived + list index``)
* ``ids``      hash: message id -> seq; makes an append idempotent (a retried or replayed
               append returns the first seq and adds nothing)
* ``summary``  the current summary record (JSON)
* ``archive``  list of summarised messages, with ``archive_ttl``

Every write is one script, so two writers (two terminals, a server replica) interleave
whole messages and never lose one. The user's index ``{user:U}:conversations`` is a sorted
set scored by creation time; listing reads ``updated_at`` from each conversation, so an
append stays one command in one slot.

The append, title and delete scripts also PUBLISH a small notification on the owner's live
channel (:mod:`runtime.state.live`), from inside the script: live updates cost no round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from redis.typing import EncodableT

from runtime.core.errors import AppError, ValidationError
from runtime.core.messages import ChatMessage, ConversationSummary
from runtime.state import codec
from runtime.state.client import SCRIPT_NOT_FOUND, RedisClient, RedisRunner
from runtime.state.keys import Keys

#: Largest single message accepted (Redis itself allows 512 MB per value).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: A hash as redis-py types it (bytes or str, chosen by ``decode_responses`` at run time);
#: our client never decodes, so the values are bytes.
RedisHash: TypeAlias = Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]

# KEYS: meta, messages, ids, summary
# ARGV: message id, body JSON without seq, now, retention, live channel prefix ('' = none), conversation id
# The live notification (runtime.state.live) is PUBLISHed here, inside the append: no extra round
# trip. Every id in it passed check_id and ``now`` is a float's repr, so concatenation is valid JSON.
_APPEND = f"""
local seq = redis.call('HGET', KEYS[3], ARGV[1])
if seq then return {{tonumber(seq), 0}} end
local uid = redis.call('HGET', KEYS[1], 'user_id')
if not uid then
  return redis.error_reply('{SCRIPT_NOT_FOUND} conversation does not exist')
end
seq = redis.call('HINCRBY', KEYS[1], 'next_seq', 1) - 1
redis.call('RPUSH', KEYS[2], '{{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2))
redis.call('HSET', KEYS[3], ARGV[1], seq)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5] .. uid, '{{"k":"m","c":"' .. ARGV[6] .. '","u":"' .. uid .. '","s":' .. seq
    .. ',"i":"' .. ARGV[1] .. '","t":' .. ARGV[3] .. '}}')
end
return {{seq, 1}}
"""

# KEYS: meta, messages, ids, summary   ARGV: now, retention, then field/value pairs
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'next_seq', 0, 'archived', 0, 'updated_at', ARGV[1], unpack(ARGV, 3))
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""

# KEYS: meta, messages, ids, summary
# ARGV: now, retention, field (title | system_prompt), value, live channel prefix ('' = none), conversation id
# A new title is published (it is the user's text: cjson encodes it).
_SET_META = f"""
local uid = redis.call('HGET', KEYS[1], 'user_id')
if not uid then
  return redis.error_reply('{SCRIPT_NOT_FOUND} conversation does not exist')
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4], 'updated_at', ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
if ARGV[5] ~= '' and ARGV[3] == 'title' then
  redis.call('PUBLISH', ARGV[5] .. uid, cjson.encode({{k='t', c=ARGV[6], u=uid, title=ARGV[4], t=ARGV[1]}}))
end
return 1
"""

# KEYS: every key of the conversation (meta first)   ARGV: live channel prefix ('' = none), conversation id
_DELETE = """
local uid = redis.call('HGET', KEYS[1], 'user_id')
redis.call('DEL', unpack(KEYS))
if uid and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1] .. uid, '{"k":"d","c":"' .. ARGV[2] .. '","u":"' .. uid .. '"}')
end
return uid
"""

# KEYS: meta, messages   ARGV: before_seq, limit
_TAIL_BEFORE = """
local archived = tonumber(redis.call('HGET', KEYS[1], 'archived') or '0')
local stop = tonumber(ARGV[1]) - archived - 1
if stop < 0 then return {} end
local start = stop - tonumber(ARGV[2]) + 1
if start < 0 then start = 0 end
return redis.call('LRANGE', KEYS[2], start, stop)
"""

# KEYS: meta, messages, summary   ARGV: first seq wanted (-1: none known), limit, known summary_seq, known created_at
# Returns {next_seq, archived, summary_seq, created_at, summary JSON or false when unchanged, messages};
# an empty array when the conversation does not exist. One round trip tells a cached tail what changed.
_SYNC = """
local m = redis.call('HMGET', KEYS[1], 'next_seq', 'archived', 'summary_seq', 'created_at')
if not m[1] then return {} end
local nxt = tonumber(m[1])
local archived = tonumber(m[2] or '0')
local created = m[4] or ''
local from = tonumber(ARGV[1])
if created ~= ARGV[4] or from < 0 or from > nxt then from = 0 end
local lo = math.max(from, nxt - tonumber(ARGV[2]), archived)
local items = {}
if lo < nxt then items = redis.call('LRANGE', KEYS[2], lo - archived, nxt - archived - 1) end
local sseq = m[3] or ''
local summary = false
if sseq ~= ARGV[3] or created ~= ARGV[4] then summary = redis.call('GET', KEYS[3]) or '' end
return {nxt, archived, sseq, created, summary, items}
"""

# KEYS: meta, messages, ids, summary, archive
# ARGV: covers_up_to id, summary JSON without covered_count, now, retention, archive ttl
_SUMMARIZE = f"""
local seq = redis.call('HGET', KEYS[3], ARGV[1])
if not seq then
  return redis.error_reply('{SCRIPT_NOT_FOUND} the summarised message is not in this conversation')
end
seq = tonumber(seq)
local archived = tonumber(redis.call('HGET', KEYS[1], 'archived') or '0')
local n = seq - archived + 1
local moved = 0
while moved < n do
  local chunk = math.min(500, n - moved)
  local items = redis.call('LRANGE', KEYS[2], 0, chunk - 1)
  redis.call('RPUSH', KEYS[5], unpack(items))
  redis.call('LTRIM', KEYS[2], chunk, -1)
  moved = moved + chunk
end
if moved > 0 then
  redis.call('HSET', KEYS[1], 'archived', seq + 1)
  redis.call('EXPIRE', KEYS[5], ARGV[5])
end
local current = redis.call('HGET', KEYS[1], 'summary_seq')
if (not current) or tonumber(current) <= seq then
  redis.call('SET', KEYS[4], '{{"covered_count":' .. (seq + 1) .. ',' .. string.sub(ARGV[2], 2))
  redis.call('HSET', KEYS[1], 'summary_seq', seq)
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return moved
"""


@dataclass
class SyncResult:
    """What :meth:`RedisHistory.sync` learnt: the conversation's counters, the summary when it
    changed (``summary_changed``), and the messages from ``first_seq`` on, decoded."""

    next_seq: int
    archived: int
    summary_seq: str
    created_at: str
    summary_changed: bool
    summary: ConversationSummary | None
    first_seq: int
    messages: list[ChatMessage]


@dataclass
class ConversationInfo:
    """What a conversation list shows, plus what a new turn needs (system prompt)."""

    id: str
    user_id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0
    archived_count: int = 0
    system_prompt: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def last_activity(self) -> float:
        """Unix time (seconds) of the last change: an alias of ``updated_at``."""
        return self.updated_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (the ``conversation`` object of an export)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message_count": self.message_count,
            "archived_count": self.archived_count,
            "system_prompt": self.system_prompt,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationInfo:
        """Inverse of :meth:`to_dict`; missing counts default to 0.

        Raises:
            KeyError: ``id``, ``user_id``, ``title``, ``created_at`` or ``updated_at`` is missing.
        """
        return cls(
            id=data["id"],
            user_id=data["user_id"],
            title=data["title"],
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            message_count=int(data.get("message_count") or 0),
            archived_count=int(data.get("archived_count") or 0),
            system_prompt=data.get("system_prompt") or "",
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass
class ConversationDump:
    """Everything stored about one conversation, for export."""

    info: ConversationInfo
    summary: ConversationSummary | None
    archived: list[ChatMessage]
    messages: list[ChatMessage]


def encode_message(message: ChatMessage) -> bytes:
    """The stored JSON of ``message`` without its ``seq`` (the script assigns it).

    Raises:
        ValidationError: the message is not JSON-safe or is over :data:`MAX_MESSAGE_BYTES`.
    """
    body = message.to_dict()
    del body["seq"]
    data = codec.dumps(body, "message")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}", details={"bytes": len(data)}
        )
    return data


def decode_message(raw: bytes | str) -> ChatMessage:
    """The :class:`ChatMessage` stored as JSON ``raw`` (with the ``seq`` the script added)."""
    return ChatMessage.from_dict(json.loads(raw))


def encode_summary(summary: ConversationSummary) -> bytes:
    """The stored JSON of ``summary`` without ``covered_count`` (the summarise script adds it)."""
    return codec.dumps(
        {
            "text": summary.text,
            "covers_up_to": summary.covers_up_to,
            "created_at": summary.created_at,
            "method": summary.method,
            "token_count": summary.token_count,
        },
        "summary",
    )


def decode_summary(raw: bytes | str) -> ConversationSummary:
    """The :class:`ConversationSummary` stored as JSON ``raw``; ``method`` defaults to ``"llm"``."""
    data = json.loads(raw)
    return ConversationSummary(
        text=data["text"],
        covers_up_to=data["covers_up_to"],
        covered_count=int(data["covered_count"]),
        created_at=float(data["created_at"]),
        method=data.get("method", "llm"),
        token_count=data.get("token_count"),
    )


class RedisHistory:
    """The Redis half of the conversation store; every method raises AppErrors."""

    def __init__(
        self,
        runner: RedisRunner,
        keys: Keys,
        *,
        retention: int = 0,
        archive_ttl: int = 7 * 86400,
        live_channel: str = "",
    ) -> None:
        self._runner = runner
        self._keys = keys
        #: Prefix of the per-user live channel appends, titles and deletes are published on
        #: (see :func:`runtime.state.live.channel_prefix`); "" publishes nothing.
        self.live_channel = live_channel
        self.retention = retention
        # With a retention set, nothing of a conversation outlives it, the archive included.
        self.archive_ttl = min(archive_ttl, retention) if retention else archive_ttl
        client = runner.client
        self._append = client.register_script(_APPEND)
        self._create = client.register_script(_CREATE)
        self._set_meta = client.register_script(_SET_META)
        self._delete = client.register_script(_DELETE)
        self._tail_before = client.register_script(_TAIL_BEFORE)
        self._summarize = client.register_script(_SUMMARIZE)
        self._sync = client.register_script(_SYNC)

    def _live_keys(self, conv_id: str) -> list[str]:
        k = self._keys
        return [k.conv_meta(conv_id), k.conv_messages(conv_id), k.conv_ids(conv_id), k.conv_summary(conv_id)]

    async def create(self, info: ConversationInfo) -> bool:
        """Store a new conversation and index it under its user.

        A new conversation is announced on the owner's live channel (a title notice, one more
        round trip, best effort) so that other terminals list it before its first message.

        Returns:
            True if created; False (and no change to the conversation) if the id already exists.
        """
        fields: list[bytes | str] = [
            "id",
            info.id,
            "user_id",
            info.user_id,
            "title",
            info.title.encode("utf-8"),
            "system_prompt",
            info.system_prompt.encode("utf-8"),
            "metadata",
            codec.dumps(info.metadata, "metadata"),
            "created_at",
            repr(info.created_at),
        ]
        keys = self._live_keys(info.id)
        args: list[EncodableT] = [repr(info.updated_at), str(self.retention), *fields]
        created = await self._runner.run(lambda r: self._create(keys=keys, args=args, client=r), "conversation create")
        index = self._keys.user_conversations(info.user_id)
        await self._runner.run(lambda r: r.zadd(index, {info.id: info.created_at}), "conversation index")
        if int(created) == 1 and self.live_channel:
            # Announced once it is in the user's index (another slot on a cluster, so not from the
            # script): a TUI that hears of a conversation it does not list reads the list again.
            notice = json.dumps({"k": "t", "c": info.id, "u": info.user_id, "title": info.title, "t": info.updated_at})
            channel = self.live_channel + info.user_id
            try:
                await self._runner.run(lambda r: r.publish(channel, notice), "conversation created notice")
            except AppError:
                pass  # best effort: the conversation is stored; other terminals list it on their next reload
        return int(created) == 1

    async def append(self, conv_id: str, message: ChatMessage, now: float) -> tuple[int, bool]:
        """Append ``message`` atomically, idempotent by message id.

        Args:
            now: Unix time in seconds, stored as ``updated_at``.

        Returns:
            ``(seq, inserted)``; inserted is False when the id was already stored (seq is then
            the first append's).

        Raises:
            NotFoundError: the conversation does not exist.
            ValidationError: the message cannot be encoded (see :func:`encode_message`).
        """
        body = encode_message(message)
        keys = self._live_keys(conv_id)
        args: list[EncodableT] = [message.id, body, repr(now), str(self.retention), self.live_channel, conv_id]
        # acked: WAITs for [redis].min_replicas_ack replicas when the runner asks for any.
        seq, inserted = await self._runner.run_script(self._append, keys, args, "message append", acked=True)
        return int(seq), bool(inserted)

    async def tail(self, conv_id: str, limit: int, before_seq: int | None = None) -> list[ChatMessage]:
        """Up to ``limit`` messages ending before ``before_seq`` (or the newest), oldest first."""
        if limit <= 0:
            return []
        messages_key = self._keys.conv_messages(conv_id)
        if before_seq is None:
            raw = await self._runner.run(lambda r: r.lrange(messages_key, -limit, -1), "tail read")
        else:
            keys = [self._keys.conv_meta(conv_id), messages_key]
            args: list[EncodableT] = [int(before_seq), int(limit)]
            raw = await self._runner.run(lambda r: self._tail_before(keys=keys, args=args, client=r), "tail read")
        return [decode_message(item) for item in raw]

    async def sync(
        self, conv_id: str, *, known_next: int, limit: int, summary_seq: str, created_at: str
    ) -> SyncResult | None:
        """Counters, a changed summary and the messages from ``known_next`` on, in one script.

        At most the newest ``limit`` messages are read; all of them from scratch when
        ``known_next`` is -1 or ``created_at`` differs (the conversation was recreated). The
        summary is read only when ``summary_seq`` or ``created_at`` differs from what is known.

        Returns:
            The :class:`SyncResult`, or None when the conversation does not exist.
        """
        k = self._keys
        keys = [k.conv_meta(conv_id), k.conv_messages(conv_id), k.conv_summary(conv_id)]
        args: list[EncodableT] = [int(known_next), int(limit), summary_seq, created_at]
        reply = await self._runner.run(lambda r: self._sync(keys=keys, args=args, client=r), "tail sync")
        if not reply:
            return None
        nxt, archived, sseq, created, summary, items = reply
        messages = [decode_message(item) for item in items]
        next_seq = int(nxt)
        changed = summary is not None
        return SyncResult(
            next_seq=next_seq,
            archived=int(archived),
            summary_seq=_text(sseq),
            created_at=_text(created),
            summary_changed=changed,
            summary=decode_summary(summary) if summary else None,
            first_seq=next_seq - len(messages),
            messages=messages,
        )

    async def info(self, conv_id: str) -> ConversationInfo | None:
        """The conversation's metadata from its meta hash, or None if it does not exist."""
        key = self._keys.conv_meta(conv_id)
        row = await self._runner.run(lambda r: r.hgetall(key), "conversation get")
        return _info(row) if row else None

    async def summary(self, conv_id: str) -> ConversationSummary | None:
        """The conversation's current summary, or None if it has none."""
        key = self._keys.conv_summary(conv_id)
        raw = await self._runner.run(lambda r: r.get(key), "summary get")
        return decode_summary(raw) if raw else None

    async def summarize(self, conv_id: str, summary: ConversationSummary, now: float) -> int:
        """Store ``summary`` and move every message up to ``covers_up_to`` to the archive.

        A summary older than the current one is not stored (the messages still move).

        Args:
            now: Unix time in seconds, stored as ``updated_at``.

        Returns:
            How many messages moved to the archive.

        Raises:
            NotFoundError: ``summary.covers_up_to`` is not a message of this conversation.
        """
        keys = [*self._live_keys(conv_id), self._keys.conv_archive(conv_id)]
        args: list[EncodableT] = [
            summary.covers_up_to,
            encode_summary(summary),
            repr(now),
            str(self.retention),
            str(self.archive_ttl),
        ]
        moved = await self._runner.run(lambda r: self._summarize(keys=keys, args=args, client=r), "summarize")
        return int(moved)

    async def set_meta(self, conv_id: str, field: str, value: str, now: float) -> None:
        """Set one text field of the conversation's meta hash and its ``updated_at`` (``now``, seconds).

        Raises:
            ValidationError: ``field`` is not ``title`` or ``system_prompt``.
            NotFoundError: the conversation does not exist.
        """
        if field not in ("title", "system_prompt"):
            raise ValidationError(f"conversation field {field!r} cannot be set")
        keys = self._live_keys(conv_id)
        args: list[EncodableT] = [
            repr(now),
            str(self.retention),
            field,
            value.encode("utf-8"),
            self.live_channel,
            conv_id,
        ]
        await self._runner.run(lambda r: self._set_meta(keys=keys, args=args, client=r), f"set {field}")

    async def delete(self, conv_id: str) -> bool:
        """Delete every key of the conversation and unindex it; False if it did not exist."""
        keys = self._keys.conv_all(conv_id)
        args: list[EncodableT] = [self.live_channel, conv_id]
        uid = await self._runner.run(lambda r: self._delete(keys=keys, args=args, client=r), "conversation delete")
        if uid is None:
            return False
        index = self._keys.user_conversations(uid.decode("utf-8"))
        await self._runner.run(lambda r: r.zrem(index, conv_id), "conversation unindex")
        return True

    async def list_for_user(self, user_id: str, limit: int | None = None) -> list[ConversationInfo]:
        """The user's conversations, most recent activity first; ids of expired ones are pruned."""
        index = self._keys.user_conversations(user_id)
        ids = await self._runner.run(lambda r: r.zrange(index, 0, -1), "conversation index")
        if not ids:
            return []
        names = [_text(i) for i in ids]

        rows = await self._runner.hgetall_many([self._keys.conv_meta(c) for c in names], "conversation list")
        found, gone = [], []
        for conv_id, row in zip(names, rows, strict=True):
            if row:
                found.append(_info(row))
            else:
                gone.append(conv_id)
        if gone:  # retention expired them: keep the index free of dead ids
            await self._runner.run(lambda r: r.zrem(index, *gone), "conversation index prune")
        found.sort(key=lambda c: c.updated_at, reverse=True)
        return found[:limit] if limit else found

    async def dump(self, conv_id: str) -> ConversationDump | None:
        """Everything stored about the conversation, read in one MULTI; None if it does not exist."""
        k = self._keys

        async def read(r: RedisClient) -> list[Any]:
            pipe = r.pipeline(transaction=True)  # one slot, so MULTI is fine on a cluster too
            pipe.hgetall(k.conv_meta(conv_id))
            pipe.get(k.conv_summary(conv_id))
            pipe.lrange(k.conv_archive(conv_id), 0, -1)
            pipe.lrange(k.conv_messages(conv_id), 0, -1)
            return await pipe.execute()

        row, summary, archived, live = await self._runner.run(read, "export")
        if not row:
            return None
        return ConversationDump(
            info=_info(row),
            summary=decode_summary(summary) if summary else None,
            archived=[decode_message(m) for m in archived],
            messages=[decode_message(m) for m in live],
        )


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _info(row: RedisHash) -> ConversationInfo:
    def text(name: str) -> str:
        return _text(row.get(name.encode(), b""))

    return ConversationInfo(
        id=text("id"),
        user_id=text("user_id"),
        title=text("title"),
        created_at=float(text("created_at") or 0),
        updated_at=float(text("updated_at") or 0),
        message_count=int(text("next_seq") or 0),
        archived_count=int(text("archived") or 0),
        system_prompt=text("system_prompt"),
        metadata=codec.loads(row.get(b"metadata")) or {},
    )
