"""SessionManager: user sessions in Redis with a sliding TTL capped at an absolute maximum.

Correct where the spec's sample is not:

* ids are ``secrets.token_urlsafe(24)`` (192 bits), not uuid4 strings;
* a session is a Redis hash, one field per data key, so concurrent ``update_session``
  calls touching different fields never lose each other's writes (no read-modify-write);
* ``get_session`` refreshes ``last_accessed`` and returns the session in one Lua call;
* ``extend_session`` never shortens a session and never goes past ``created_at + max_ttl``;
* the per-user index and the global expiry index are sorted sets scored by expiry time,
  so dead ids are filtered on read and cleanup walks only what has expired (no SCAN);
* on a Redis Cluster the session (``{sess:ID}``), the user's indexes (``{user:ID}``) and the
  expiry index sit in different slots, so no script or MULTI spans them: each Lua script
  touches one session key, and index updates are separate (pipelined) commands.

Times are epoch seconds from an injected wall clock; Redis key TTLs are derived from it.

Each running TUI or CLI process holds one session (:mod:`runtime.host.session_keeper`), and
every change of its conversation also updates a per-user "last conversation" pointer that
outlives the session, so a relaunch reopens where the user was.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.config import RedisConfig
from runtime.core.errors import ValidationError
from runtime.core.ids import validate_user_id
from runtime.state import codec
from runtime.state.client import RedisRunner
from runtime.state.keys import Keys

_DATA = "d:"  # prefix of the hash fields that hold session data

_GET = """
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'last_accessed', ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

_UPDATE = """
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'last_accessed', ARGV[1], unpack(ARGV, 2))
return 1
"""

_EXTEND = """
local h = redis.call('HMGET', KEYS[1], 'expires_at', 'created_at', 'user_id')
local now = tonumber(ARGV[1])
if not h[1] or tonumber(h[1]) <= now then return false end
local current = tonumber(h[1])
local new = math.min(now + tonumber(ARGV[2]), tonumber(h[2]) + tonumber(ARGV[3]))
if new < current then new = current end
local text = string.format('%.6f', new)
redis.call('HSET', KEYS[1], 'expires_at', text, 'last_accessed', ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((new - now) * 1000)))
return {text, h[3]}
"""

_DELETE = """
local uid = redis.call('HGET', KEYS[1], 'user_id')
redis.call('DEL', KEYS[1])
return uid
"""

# Delete only if still expired: a session extended after the cleanup read it must survive.
_DELETE_IF_EXPIRED = """
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if exp and tonumber(exp) > tonumber(ARGV[1]) then return 0 end
return redis.call('DEL', KEYS[1])
"""


@dataclass
class Session:
    """The spec's user session. Times are epoch seconds; ``data`` holds JSON values (a Holdfast
    process stores its face, pid and host); ``active_conversation_id`` is the conversation it shows."""

    id: str
    user_id: str
    created_at: float
    last_accessed: float
    expires_at: float
    data: dict[str, Any] = field(default_factory=dict)
    active_conversation_id: str | None = None


class SessionManager:
    """Create, read, update, extend, delete and clean up sessions (the spec's names), and keep
    each user's last conversation. ``default_ttl``/``max_ttl`` are seconds; ``clock`` returns
    epoch seconds."""

    def __init__(
        self,
        runner: RedisRunner,
        *,
        key_prefix: str = "holdfast",
        default_ttl: int = 3600,
        max_ttl: int = 86400,
        clock: Callable[[], float] = time.time,
        cleanup_batch: int = 500,
    ) -> None:
        if default_ttl <= 0 or max_ttl < default_ttl:
            raise ValidationError(
                f"session TTLs must satisfy 0 < default_ttl <= max_ttl, got {default_ttl} and {max_ttl}"
            )
        self._runner = runner
        self._keys = Keys(key_prefix)
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self._clock = clock
        self._batch = cleanup_batch
        client = runner.client
        self._get = client.register_script(_GET)
        self._update = client.register_script(_UPDATE)
        self._extend = client.register_script(_EXTEND)
        self._delete = client.register_script(_DELETE)
        self._delete_if_expired = client.register_script(_DELETE_IF_EXPIRED)

    @classmethod
    def from_config(
        cls, runner: RedisRunner, config: RedisConfig, *, clock: Callable[[], float] = time.time
    ) -> SessionManager:
        """A manager with the ``[redis]`` section's key prefix and TTLs (``session_ttl``,
        ``session_max_ttl``, seconds)."""
        return cls(
            runner,
            key_prefix=config.key_prefix,
            default_ttl=config.session_ttl,
            max_ttl=config.session_max_ttl,
            clock=clock,
        )

    # ------------------------------------------------------------ API

    async def create_session(
        self, user_id: str, initial_data: dict[str, Any] | None = None, *, ttl: int | None = None
    ) -> Session:
        """Create a session for ``user_id`` holding ``initial_data`` (JSON values), alive for
        ``ttl`` seconds (default ``default_ttl``, at most ``max_ttl``). Spec name. Raises
        ValidationError for a malformed user id or data."""
        validate_user_id(user_id)
        now = self._clock()
        lifetime = min(ttl or self.default_ttl, self.max_ttl)
        session = Session(
            id=secrets.token_urlsafe(24),
            user_id=user_id,
            created_at=now,
            last_accessed=now,
            expires_at=now + lifetime,
            data=dict(initial_data or {}),
        )
        mapping: dict[str, bytes | str] = {
            "id": session.id,
            "user_id": user_id,
            "created_at": _fmt(now),
            "last_accessed": _fmt(now),
            "expires_at": _fmt(session.expires_at),
        }
        mapping.update(_encode_data(session.data))
        key = self._keys.session(session.id)
        user_idx = self._keys.user_sessions(user_id)
        expiry = self._keys.session_expiry()

        async def write(r: Any) -> Any:
            # Not a MULTI: the session ({sess:ID}), the user's index ({user:ID}) and the expiry
            # index live in different cluster slots. The hash is written first; an index entry
            # whose hash is missing is pruned on read, so a failure between them leaves no lie.
            pipe = r.pipeline(transaction=False)
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, _ms(lifetime))
            pipe.zadd(user_idx, {session.id: session.expires_at})
            # No session in this index can outlive created_at + max_ttl of the newest one.
            pipe.expire(user_idx, self.max_ttl)
            pipe.zadd(expiry, {_member(session.id, user_id): session.expires_at})
            return await pipe.execute()

        await self._runner.run(write, "session create")
        return session

    async def get_session(self, session_id: str) -> Session | None:
        """The live session (``last_accessed`` refreshed in the same round trip), or None."""
        if not _plausible(session_id):
            return None
        key = self._keys.session(session_id)
        now = self._clock()
        raw = await self._runner.run(lambda r: self._get(keys=[key], args=[_fmt(now)], client=r), "session get")
        return _decode(_pairs(raw)) if raw else None

    async def update_session(self, session_id: str, updates: dict[str, Any]) -> bool:
        """Set data fields atomically; fields not named are untouched. False if the session is gone."""
        if not _plausible(session_id):
            return False
        encoded = _encode_data(updates)
        args: list[bytes | str] = [_fmt(self._clock())]
        for name, value in encoded.items():
            args += [name, value]
        key = self._keys.session(session_id)
        result = await self._runner.run(lambda r: self._update(keys=[key], args=args, client=r), "session update")
        return int(result) == 1

    async def set_active_conversation(self, session_id: str, conversation_id: str | None) -> bool:
        """Track which conversation the session is showing (None clears it)."""
        if conversation_id is not None:
            codec.check_id(conversation_id, "conversation_id")
        if not _plausible(session_id):
            return False
        key = self._keys.session(session_id)
        args = [_fmt(self._clock()), "active_conversation_id", conversation_id or ""]
        result = await self._runner.run(lambda r: self._update(keys=[key], args=args, client=r), "session update")
        return int(result) == 1

    async def extend_session(self, session_id: str, additional_seconds: int | None = None) -> bool:
        """Push expiry to ``now + additional`` but never past ``created_at + max_ttl`` nor earlier
        than it already is. False if the session is gone."""
        if not _plausible(session_id):
            return False
        additional = additional_seconds or self.default_ttl
        if additional <= 0:
            raise ValidationError(f"additional_seconds must be > 0, got {additional}")
        key = self._keys.session(session_id)
        now = self._clock()
        args = [_fmt(now), str(additional), str(self.max_ttl)]
        result = await self._runner.run(lambda r: self._extend(keys=[key], args=args, client=r), "session extend")
        if not result:
            return False
        expires_at, user_id = float(result[0]), _text(result[1])
        user_idx, expiry = self._keys.user_sessions(user_id), self._keys.session_expiry()

        async def reindex(r: Any) -> Any:
            pipe = r.pipeline(transaction=False)
            pipe.zadd(user_idx, {session_id: expires_at}, xx=True)
            pipe.zadd(expiry, {_member(session_id, user_id): expires_at}, xx=True)
            return await pipe.execute()

        await self._runner.run(reindex, "session reindex")
        return True

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its index entries; False if it did not exist. Spec name."""
        if not _plausible(session_id):
            return False
        key = self._keys.session(session_id)
        uid = await self._runner.run(lambda r: self._delete(keys=[key], client=r), "session delete")
        if uid is None:
            return False
        user_id = _text(uid)
        user_idx, expiry = self._keys.user_sessions(user_id), self._keys.session_expiry()

        async def unindex(r: Any) -> Any:
            pipe = r.pipeline(transaction=False)
            pipe.zrem(user_idx, session_id)
            pipe.zrem(expiry, _member(session_id, user_id))
            return await pipe.execute()

        await self._runner.run(unindex, "session unindex")
        return True

    async def get_user_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions, most recently used first. Dead ids are pruned from the index."""
        validate_user_id(user_id)
        user_idx = self._keys.user_sessions(user_id)
        now = self._clock()

        async def live_ids(r: Any) -> Any:
            pipe = r.pipeline(transaction=False)
            pipe.zremrangebyscore(user_idx, "-inf", now)
            pipe.zrange(user_idx, 0, -1)
            return await pipe.execute()

        _, ids = await self._runner.run(live_ids, "session index")
        if not ids:
            return []
        names = [_text(i) for i in ids]

        rows = await self._runner.hgetall_many([self._keys.session(sid) for sid in names], "session list")
        sessions, gone = [], []
        for sid, row in zip(names, rows, strict=True):
            if row and float(row[b"expires_at"]) > now:
                sessions.append(_decode(row))
            else:
                gone.append(sid)
        if gone:  # a key Redis expired before its index entry: drop the dangling id now
            await self._runner.run(lambda r: r.zrem(user_idx, *gone), "session index prune")
        sessions.sort(key=lambda s: s.last_accessed, reverse=True)
        return sessions

    async def cleanup_expired_sessions(self) -> int:
        """Delete sessions whose expiry has passed, walking only the expiry index; the count removed."""
        now = self._clock()
        expiry = self._keys.session_expiry()
        removed = 0
        while True:
            batch = await self._runner.run(
                lambda r: r.zrangebyscore(expiry, "-inf", now, start=0, num=self._batch), "session expiry scan"
            )
            if not batch:
                return removed
            members = [_text(m) for m in batch]

            async def purge(r: Any, members: list[str] = members) -> Any:
                pipe = r.pipeline(transaction=False)
                if self._runner.cluster:
                    # redis-py's cluster pipeline refuses EVALSHA: the scripts run as single
                    # calls, concurrently (each routed to its session's slot).
                    await asyncio.gather(
                        *(
                            self._delete_if_expired(keys=[self._keys.session(m.split(":", 1)[0])], args=[_fmt(now)])
                            for m in members
                        )
                    )
                for member in members:
                    sid, uid = member.split(":", 1)
                    if not self._runner.cluster:
                        # A Script on a pipeline is SCRIPT LOADed first if the server forgot it.
                        await self._delete_if_expired(keys=[self._keys.session(sid)], args=[_fmt(now)], client=pipe)
                    pipe.zremrangebyscore(self._keys.user_sessions(uid), "-inf", now)
                    pipe.zrem(expiry, member)
                return await pipe.execute()

            await self._runner.run(purge, "session cleanup")
            removed += len(members)
            if len(batch) < self._batch:
                return removed

    # ------------------------------------------------------------ the user's last conversation

    async def remember_last_conversation(self, user_id: str, conversation_id: str) -> None:
        """Record the conversation ``user_id`` is in, for whichever process opens next.

        Kept per user, apart from any session, so it outlives a session deleted at stop or
        expired after a crash (a relaunch reopens it). No expiry: one short key per user.
        Raises ValidationError for a malformed id; Redis errors as the guarded runner raises them.
        """
        validate_user_id(user_id)
        codec.check_id(conversation_id, "conversation_id")
        key = self._keys.user_last_conversation(user_id)
        await self._runner.run(lambda r: r.set(key, conversation_id), "last conversation set")

    async def last_conversation(self, user_id: str) -> str | None:
        """The conversation ``user_id`` was last in, from any process; None if never recorded."""
        validate_user_id(user_id)
        key = self._keys.user_last_conversation(user_id)
        raw = await self._runner.run(lambda r: r.get(key), "last conversation get")
        return _text(raw) if raw else None


def _text(value: object) -> str:
    """A reply item as text: redis-py returns bytes (str when the client decodes responses)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _fmt(t: float) -> str:
    return f"{t:.6f}"


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _member(session_id: str, user_id: str) -> str:
    return f"{session_id}:{user_id}"


def _plausible(session_id: object) -> bool:
    """A malformed id can never name a session; treat it as missing rather than erroring."""
    try:
        codec.check_id(session_id, "session_id")
    except ValidationError:
        return False
    return True


def _encode_data(data: dict[str, Any]) -> dict[str, bytes]:
    if not isinstance(data, dict):
        raise ValidationError(f"session data must be a dict, got {type(data).__name__}")
    out: dict[str, bytes] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"session data keys must be non-empty text, got {name!r}")
        codec.check_text(name, "session data key")
        out[_DATA + name] = codec.dumps(value, f"session data {name!r}")
    return out


def _pairs(raw: list[bytes]) -> dict[bytes, bytes]:
    return {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}


def _decode(row: dict[bytes, bytes]) -> Session:
    data: dict[str, Any] = {}
    for name, value in row.items():
        text = name.decode("utf-8")
        if text.startswith(_DATA):
            data[text[len(_DATA) :]] = codec.loads(value)
    active = row.get(b"active_conversation_id", b"").decode("utf-8") or None
    return Session(
        id=row[b"id"].decode("utf-8"),
        user_id=row[b"user_id"].decode("utf-8"),
        created_at=float(row[b"created_at"]),
        last_accessed=float(row[b"last_accessed"]),
        expires_at=float(row[b"expires_at"]),
        data=data,
        active_conversation_id=active,
    )
