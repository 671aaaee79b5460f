"""Conversation history in Redis: append-only lists, atomic Lua scripts, one slot per conversation.

Keys of conversation ``C`` (all tagged ``{conv:C}``, see :mod:`runtime.state.keys`):

* ``meta``     hash: id, user_id, title, system_prompt, metadata (JSON), created_at,
               updated_at, next_seq (messages ever appended), archived (how many moved out),
               and one ``set:NAME`` field per conversation setting (the model chosen for it,
               the reply variant chosen for a user message): one HSET each, never a JSON rewrite
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

Branches (issue 17). A branch of ``P`` at ``fork_seq`` F is a new conversation (id ``P~XXXXXX``,
same user, same cluster slot: see :mod:`runtime.state.keys`) whose meta holds a parent pointer
(``parent``) and ``base`` = F + 1; it shares P's messages with seq <= F and stores nothing of
them: branching costs a few hash fields whatever the length of P. Its own messages continue at
seq F + 1 (``next_seq`` and ``archived`` start at ``base``, so ``seq = archived + index`` still
holds for its own list). Its ``floor`` is where its live history starts: P's floor (and a copy of
P's summary) when P's summary ends at or before the fork, else 0 (the prefix is read from P's
archive). Every read of a branch (tail, pages, sync, export) reads the prefix from its ancestors
in the same script as its own messages: one round trip, whatever the depth.

Keeping the prefix alive:

* Summarising (archiving) a parent moves its messages to its archive, where the branch still
  reads them by seq; an archive whose conversation has live branches does not get the short
  ``archive_ttl`` (it is kept as long as the conversation: persistent, or the retention).
* Summarising a branch up to a message of its prefix moves its ``floor`` and nothing else (the
  shared messages belong to the parent).
* Deleting a parent that has live branches keeps its stored messages (its meta is marked
  ``deleted``: it is gone from lists and reads, and cannot be appended to) until its last branch
  is deleted, which removes both. Chosen over copying the prefix into every branch at delete time
  because a delete then stays O(1) too, and a branch never changes under a reader.
* With a retention set, an append to a branch refreshes its ancestors' expiry as well as its own.
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
from runtime.state.client import SCRIPT_INVALID, SCRIPT_NOT_FOUND, RedisClient, RedisRunner
from runtime.state.keys import Keys, ancestors, is_branch

#: Largest single message accepted (Redis itself allows 512 MB per value).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: The meta hash field prefix of a conversation setting (``set:model``).
SETTING_PREFIX = "set:"

#: A hash as redis-py types it (bytes or str, chosen by ``decode_responses`` at run time);
#: our client never decodes, so the values are bytes.
RedisHash: TypeAlias = Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]

# The messages with lo <= seq < hi of the conversation whose conv_all keys start at KEYS[g] and of
# the ancestors listed after it (6 keys each, nearest first: Keys.conv_lineage), oldest first.
# Each level owns seqs [base, next): [base, archived) in its archive, [archived, next) in its list;
# below base, its parent. A level's child's base bounds what is read from it.
_RANGE = """
local function range(g, lo, hi)
  local levels = {}
  while hi > lo and g <= #KEYS do
    local m = redis.call('HMGET', KEYS[g], 'base', 'archived')
    local base = tonumber(m[1] or '0')
    local own = tonumber(m[2] or '0')
    local level = {}
    local a, e = math.max(lo, base), math.min(hi, own)
    if a < e then level[#level + 1] = redis.call('LRANGE', KEYS[g + 5], a - base, e - base - 1) end
    a = math.max(lo, own)
    if a < hi then level[#level + 1] = redis.call('LRANGE', KEYS[g + 1], a - own, hi - own - 1) end
    levels[#levels + 1] = level
    hi = math.min(hi, base)
    g = g + 6
  end
  local out = {}
  for i = #levels, 1, -1 do
    for _, part in ipairs(levels[i]) do
      for _, item in ipairs(part) do out[#out + 1] = item end
    end
  end
  return out
end
"""

# KEYS: meta, messages, ids, summary (then, with a retention, every ancestor's keys: refreshed too)
# ARGV: message id, body JSON without seq, now, retention, live channel prefix ('' = none), conversation id
# The live notification (runtime.state.live) is PUBLISHed here, inside the append: no extra round
# trip. Every id in it passed check_id and ``now`` is a float's repr, so concatenation is valid JSON.
_APPEND = f"""
local seq = redis.call('HGET', KEYS[3], ARGV[1])
if seq then return {{tonumber(seq), 0}} end
local uid = redis.call('HGET', KEYS[1], 'user_id')
if not uid or redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then
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
if not uid or redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then
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

# KEYS: Keys.conv_lineage of the conversation   ARGV: live channel prefix ('' = none), conversation id,
# then each ancestor's id, nearest first. A conversation with live branches is only marked deleted
# (they read their prefix from it); deleting the last branch of such a parent removes the parent
# too, and so on up. Returns the owner, or nil when there was nothing (left) to delete.
_DELETE = """
local uid = redis.call('HGET', KEYS[1], 'user_id')
if not uid then return nil end
local was = redis.call('HEXISTS', KEYS[1], 'deleted') == 1
if redis.call('SCARD', KEYS[5]) > 0 then
  redis.call('HSET', KEYS[1], 'deleted', 1)
  redis.call('DEL', KEYS[4])
else
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
  local child, g, i = ARGV[2], 7, 3
  while g <= #KEYS do
    redis.call('SREM', KEYS[g + 4], child)
    if redis.call('HEXISTS', KEYS[g], 'deleted') == 0 or redis.call('SCARD', KEYS[g + 4]) > 0 then break end
    redis.call('DEL', KEYS[g], KEYS[g + 1], KEYS[g + 2], KEYS[g + 3], KEYS[g + 4], KEYS[g + 5])
    child, g, i = ARGV[i], g + 6, i + 1
  end
end
if was then return nil end
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1] .. uid, '{"k":"d","c":"' .. ARGV[2] .. '","u":"' .. uid .. '"}')
end
return uid
"""

# KEYS: Keys.conv_lineage of the new branch, whose ancestors start with the parent (KEYS[7..12])
# ARGV: fork seq, user id, now, retention, title, branch id, parent id
# Returns 1 (created), 0 (the id is taken: pick another); NOTFOUND for an unknown, deleted or
# other user's parent (the same answer: ids cannot be probed), INVALID for a seq out of range.
_BRANCH = f"""
local p = redis.call('HMGET', KEYS[7], 'user_id', 'next_seq', 'archived', 'floor', 'summary_seq',
  'system_prompt', 'metadata', 'deleted')
if not p[1] or p[8] or p[1] ~= ARGV[2] then
  return redis.error_reply('{SCRIPT_NOT_FOUND} conversation ' .. ARGV[7] .. ' does not exist')
end
local nxt, at = tonumber(p[2]), tonumber(ARGV[1])
if at < -1 or at >= nxt then
  return redis.error_reply('{SCRIPT_INVALID} seq ' .. ARGV[1] .. ' is out of range: conversation '
    .. ARGV[7] .. ' has messages 0 to ' .. (nxt - 1) .. '; branch at one of them (or -1: before the first)')
end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local base = at + 1
local pfloor = tonumber(p[4] or p[3] or '0')
local floor = 0
local fields = {{'id', ARGV[6], 'user_id', ARGV[2], 'title', ARGV[5], 'system_prompt', p[6] or '',
  'metadata', p[7] or '{{}}', 'created_at', ARGV[3], 'updated_at', ARGV[3], 'next_seq', base,
  'archived', base, 'base', base, 'parent', ARGV[7]}}
if pfloor <= base then
  floor = pfloor
  local summary = redis.call('GET', KEYS[10])
  if summary and p[5] then
    redis.call('SET', KEYS[4], summary)
    fields[#fields + 1] = 'summary_seq'
    fields[#fields + 1] = p[5]
  end
end
fields[#fields + 1] = 'floor'
fields[#fields + 1] = floor
-- the parent's settings (its model, the reply variants picked in the shared prefix) hold in the branch
local meta = redis.call('HGETALL', KEYS[7])
for i = 1, #meta, 2 do
  if string.sub(meta[i], 1, {len(SETTING_PREFIX)}) == '{SETTING_PREFIX}' then
    fields[#fields + 1] = meta[i]
    fields[#fields + 1] = meta[i + 1]
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[11], ARGV[6])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for _, k in ipairs({{KEYS[1], KEYS[4], KEYS[11], KEYS[12]}}) do redis.call('EXPIRE', k, ttl) end
else
  redis.call('PERSIST', KEYS[12])
end
return 1
"""

# KEYS: Keys.conv_lineage   ARGV: before_seq (-1: the newest), limit
# The newest ``limit`` live messages before ``before_seq``, a branch's shared prefix included.
_TAIL_BEFORE = (
    _RANGE
    + """
local m = redis.call('HMGET', KEYS[1], 'next_seq', 'archived', 'floor')
if not m[1] then return {} end
local hi = tonumber(ARGV[1])
if hi < 0 then hi = tonumber(m[1]) end
local lo = math.max(hi - tonumber(ARGV[2]), tonumber(m[3] or m[2] or '0'))
return range(1, lo, hi)
"""
)

# KEYS: Keys.conv_lineage of a branch   ARGV: none
# Its whole shared prefix (seq < base), ancestors' archives included, oldest first (for export).
_PREFIX = (
    _RANGE
    + """
local base = tonumber(redis.call('HGET', KEYS[1], 'base') or '0')
return range(7, 0, base)
"""
)

# KEYS: Keys.conv_lineage   ARGV: first seq wanted (-1: none known), limit, known summary_seq, known created_at
# Returns {next_seq, floor, summary_seq, created_at, summary JSON or false when unchanged, messages};
# an empty array when the conversation does not exist. One round trip tells a cached tail what changed;
# ``floor`` is where live history starts (``archived`` for a root; a branch's prefix is live history).
_SYNC = (
    _RANGE
    + """
local m = redis.call('HMGET', KEYS[1], 'next_seq', 'archived', 'summary_seq', 'created_at', 'floor', 'deleted')
if not m[1] or m[6] then return {} end
local nxt = tonumber(m[1])
local archived = tonumber(m[5] or m[2] or '0')
local created = m[4] or ''
local from = tonumber(ARGV[1])
if created ~= ARGV[4] or from < 0 or from > nxt then from = 0 end
local lo = math.max(from, nxt - tonumber(ARGV[2]), archived)
local items = range(1, lo, nxt)
local sseq = m[3] or ''
local summary = false
if sseq ~= ARGV[3] or created ~= ARGV[4] then summary = redis.call('GET', KEYS[4]) or '' end
return {nxt, archived, sseq, created, summary, items}
"""
)

# KEYS: Keys.conv_lineage (meta, messages, ids, summary, branches, archive, then ancestors)
# ARGV: covers_up_to id, summary JSON without covered_count, now, retention, archive ttl
# In a branch, covers_up_to may be a message of the shared prefix (found in an ancestor's ids):
# only the branch's floor moves then; the parent's messages are not the branch's to move.
_SUMMARIZE = f"""
local seq = redis.call('HGET', KEYS[3], ARGV[1])
local g, base = 7, tonumber(redis.call('HGET', KEYS[1], 'base') or '0')
while not seq and g <= #KEYS do
  seq = redis.call('HGET', KEYS[g + 2], ARGV[1])
  if seq and tonumber(seq) >= base then seq = nil end
  base = tonumber(redis.call('HGET', KEYS[g], 'base') or '0')
  g = g + 6
end
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
  redis.call('RPUSH', KEYS[6], unpack(items))
  redis.call('LTRIM', KEYS[2], chunk, -1)
  moved = moved + chunk
end
if moved > 0 then
  redis.call('HSET', KEYS[1], 'archived', seq + 1)
  if redis.call('SCARD', KEYS[5]) == 0 then
    redis.call('EXPIRE', KEYS[6], ARGV[5])
  elseif tonumber(ARGV[4]) > 0 then
    redis.call('EXPIRE', KEYS[6], ARGV[4])
  else
    redis.call('PERSIST', KEYS[6])
  end
end
local floor = redis.call('HGET', KEYS[1], 'floor')
if floor and tonumber(floor) < seq + 1 then redis.call('HSET', KEYS[1], 'floor', seq + 1) end
local current = redis.call('HGET', KEYS[1], 'summary_seq')
if (not current) or tonumber(current) <= seq then
  redis.call('SET', KEYS[4], '{{"covered_count":' .. (seq + 1) .. ',' .. string.sub(ARGV[2], 2))
  redis.call('HSET', KEYS[1], 'summary_seq', seq)
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ttl) end
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
    #: A branch's parent conversation ("" for a conversation that is not a branch).
    parent_id: str = ""
    #: The seq of the last message a branch shares with its parent (-1: none; None: not a branch).
    fork_seq: int | None = None
    #: Settings chosen after creation, name -> text (``model``, ``variant:<user message id>``).
    settings: dict[str, str] = field(default_factory=dict)

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
            "parent_id": self.parent_id or None,
            "fork_seq": self.fork_seq,
            "settings": self.settings,
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
            parent_id=data.get("parent_id") or "",
            fork_seq=None if data.get("fork_seq") is None else int(data["fork_seq"]),
            settings={str(k): str(v) for k, v in (data.get("settings") or {}).items()},
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
        self._branch = client.register_script(_BRANCH)
        self._prefix = client.register_script(_PREFIX)

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
        if self.retention and is_branch(conv_id):  # the shared prefix expires no sooner than the branch
            keys += [key for parent in ancestors(conv_id) for key in self._keys.conv_all(parent)]
        args: list[EncodableT] = [message.id, body, repr(now), str(self.retention), self.live_channel, conv_id]
        # acked: WAITs for [redis].min_replicas_ack replicas when the runner asks for any.
        seq, inserted = await self._runner.run_script(self._append, keys, args, "message append", acked=True)
        return int(seq), bool(inserted)

    async def tail(self, conv_id: str, limit: int, before_seq: int | None = None) -> list[ChatMessage]:
        """Up to ``limit`` messages ending before ``before_seq`` (or the newest), oldest first."""
        if limit <= 0:
            return []
        messages_key = self._keys.conv_messages(conv_id)
        if before_seq is None and not is_branch(conv_id):
            raw = await self._runner.run(lambda r: r.lrange(messages_key, -limit, -1), "tail read")
        else:  # a branch's page may reach into its shared prefix: one script reads both
            keys = self._keys.conv_lineage(conv_id)
            args: list[EncodableT] = [-1 if before_seq is None else int(before_seq), int(limit)]
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
        keys = self._keys.conv_lineage(conv_id)
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
        return _info(row) if _live(row) else None

    async def branch(self, parent_id: str, branch_id: str, at_seq: int, user_id: str, title: str, now: float) -> bool:
        """Store the branch ``branch_id`` of ``parent_id`` sharing its messages up to seq ``at_seq``
        (-1: none), in one script: a few meta fields, no message copied (see the module docstring).

        ``branch_id`` must be ``parent_id`` + :data:`~runtime.state.keys.BRANCH_MARK` + a suffix;
        ``now`` is Unix time in seconds. The branch is indexed under ``user_id`` and announced on
        the live channel like a created conversation.

        Returns:
            True if created; False if ``branch_id`` is taken (pick another suffix).

        Raises:
            NotFoundError: the parent does not exist, was deleted, or is not ``user_id``'s.
            ValidationError: ``at_seq`` is not between -1 and the parent's last seq.
        """
        keys = self._keys.conv_lineage(branch_id)
        args: list[EncodableT] = [
            int(at_seq),
            user_id,
            repr(now),
            str(self.retention),
            title.encode("utf-8"),
            branch_id,
            parent_id,
        ]
        created = await self._runner.run(lambda r: self._branch(keys=keys, args=args, client=r), "conversation branch")
        if int(created) != 1:
            return False
        index = self._keys.user_conversations(user_id)
        await self._runner.run(lambda r: r.zadd(index, {branch_id: now}), "conversation index")
        if self.live_channel:
            notice = json.dumps({"k": "t", "c": branch_id, "u": user_id, "title": title, "t": now})
            channel = self.live_channel + user_id
            try:
                await self._runner.run(lambda r: r.publish(channel, notice), "conversation created notice")
            except AppError:
                pass  # best effort, as for create
        return True

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
        keys = self._keys.conv_lineage(conv_id)
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
            ValidationError: ``field`` is not ``title``, ``system_prompt`` or a setting
                (``set:NAME``, see :data:`SETTING_PREFIX`).
            NotFoundError: the conversation does not exist.
        """
        if field not in ("title", "system_prompt") and not (
            field.startswith(SETTING_PREFIX) and len(field) > len(SETTING_PREFIX)
        ):
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
        """Delete the conversation and unindex it; False if it did not exist (or was deleted).

        A conversation with live branches is only marked deleted (its messages stay, for them);
        deleting the last branch of a deleted parent removes the parent too (module docstring).
        """
        keys = self._keys.conv_lineage(conv_id)
        args: list[EncodableT] = [self.live_channel, conv_id, *ancestors(conv_id)]
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
            if _live(row):
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
        if not _live(row):
            return None
        info = _info(row)
        old = [decode_message(m) for m in archived]
        if info.parent_id:  # the shared prefix, from the ancestors (their archives included)
            keys = k.conv_lineage(conv_id)
            raw = await self._runner.run(lambda r: self._prefix(keys=keys, args=[], client=r), "export prefix")
            prefix = [decode_message(m) for m in raw]
            floor = info.archived_count  # before it: summarised; from it on: live history
            live_prefix = [m for m in prefix if (m.seq or 0) >= floor]
            old = [m for m in prefix if (m.seq or 0) < floor] + old
            return ConversationDump(
                info, decode_summary(summary) if summary else None, old, live_prefix + [decode_message(m) for m in live]
            )
        return ConversationDump(
            info=info,
            summary=decode_summary(summary) if summary else None,
            archived=old,
            messages=[decode_message(m) for m in live],
        )


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _live(row: RedisHash | None) -> bool:
    """True for the meta hash of a conversation that exists and is not a deleted parent kept
    for its branches."""
    return bool(row) and b"deleted" not in row  # type: ignore[operator]


def _info(row: RedisHash) -> ConversationInfo:
    def text(name: str) -> str:
        return _text(row.get(name.encode(), b""))

    parent = text("parent")

    return ConversationInfo(
        id=text("id"),
        user_id=text("user_id"),
        title=text("title"),
        created_at=float(text("created_at") or 0),
        updated_at=float(text("updated_at") or 0),
        message_count=int(text("next_seq") or 0),
        # A branch's live history starts at its floor (its prefix is live history, not archived).
        archived_count=int(text("floor") or text("archived") or 0),
        system_prompt=text("system_prompt"),
        metadata=codec.loads(row.get(b"metadata")) or {},
        parent_id=parent,
        fork_seq=int(text("base") or 0) - 1 if parent else None,
        settings={
            _text(key)[len(SETTING_PREFIX) :]: _text(value)
            for key, value in row.items()
            if _text(key).startswith(SETTING_PREFIX)
        },
    )
