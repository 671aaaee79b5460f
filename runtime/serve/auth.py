"""API keys and the principal of a request: each key is one user, every query is scoped to it.

Keys are created by ``holdfast keys create --user NAME`` and shown once: ``hf_`` and 43 random
URL-safe characters (256 bits). Redis holds only their SHA-256 (a random 256-bit secret needs no
slow hash: nothing can be guessed from its digest), under ``<prefix>:apikey:<sha256>`` ->
``{"id", "user"}``, and an index hash ``<prefix>:apikeys`` of key id -> ``{"user", "sha256",
"created_at", "hint"}`` for ``keys list`` and ``keys revoke``. A revoked key fails on the very
next request of every replica (no cache).

A request presents its key as ``Authorization: Bearer <key>`` (what the OpenAI SDK sends) or
``X-API-Key``. With no key created and the server bound to loopback, a request without a
Holdfast key (none, or an OpenAI client's placeholder) is the single local user (as the TUI is);
once any key exists, or when bound elsewhere, every request needs one (401 otherwise).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.core.errors import AuthenticationError, NotFoundError
from runtime.core.ids import validate_user_id
from runtime.state.client import RedisRunner

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Prefix of every key Holdfast issues (lets secret scanners recognise a leaked one).
KEY_PREFIX = "hf_"
#: What `holdfast keys list` shows as a key's id ("key_" and 12 hex digits).
KEY_ID_PATTERN = re.compile(r"key_[0-9a-f]{12}")
#: Seconds the "no key exists yet" answer is reused before Redis is asked again.
NO_KEYS_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: ``user_id`` scopes every conversation, memory and session;
    ``key_id`` is the API key used (None for the single local user); ``limit_key`` names the
    rate-limit buckets (the key id, or ``local:<user>``)."""

    user_id: str
    key_id: str | None = None

    @property
    def limit_key(self) -> str:
        """The rate-limit bucket name of this principal."""
        return self.key_id or f"local:{self.user_id}"


@dataclass(frozen=True)
class ApiKeyInfo:
    """A stored key as ``keys list`` shows it: its id, user, creation time (epoch seconds) and
    ``hint`` (the first characters, enough to tell keys apart, never enough to use one)."""

    id: str
    user_id: str
    created_at: float
    hint: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``holdfast keys list --json``)."""
        return {"id": self.id, "user": self.user_id, "created_at": self.created_at, "hint": self.hint}


def digest(key: str) -> str:
    """The SHA-256 hex digest a key is stored under."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKeys:
    """Create, list, revoke and check API keys in Redis through ``runner`` (``Guard("redis")``).

    Every method can raise the Redis AppErrors of :class:`runtime.state.client.RedisRunner`
    (``ServiceUnavailableError`` when Redis is out, ``CircuitOpenError``).
    """

    def __init__(
        self, runner: RedisRunner, *, key_prefix: str = "holdfast", clock: Callable[[], float] = time.time
    ) -> None:
        self._runner = runner
        self._prefix = key_prefix
        self._index = f"{key_prefix}:apikeys"
        self._clock = clock
        self._no_keys_until = 0.0

    def _key(self, sha: str) -> str:
        return f"{self._prefix}:apikey:{sha}"

    async def create(self, user_id: str) -> tuple[ApiKeyInfo, str]:
        """A new key for ``user_id``: (its info, the secret itself, shown only now).
        ValidationError for a malformed user name."""
        validate_user_id(user_id, what="--user")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        info = ApiKeyInfo("key_" + secrets.token_hex(6), user_id, self._clock(), secret[:10])
        sha = digest(secret)
        entry = json.dumps({"user": user_id, "sha256": sha, "created_at": info.created_at, "hint": info.hint})

        async def write(r: Redis) -> object:
            pipe = r.pipeline(transaction=True)
            pipe.set(self._key(sha), json.dumps({"id": info.id, "user": user_id}))
            pipe.hset(self._index, info.id, entry)
            return await pipe.execute()

        await self._runner.run(write, "create an API key")
        return info, secret

    async def list(self, user_id: str | None = None) -> list[ApiKeyInfo]:
        """Keys of ``user_id`` (None: every user's), oldest first."""
        raw = await self._runner.run(lambda r: r.hgetall(self._index), "list API keys")
        found = []
        for key_id, value in raw.items():
            data = json.loads(value)
            name = key_id.decode() if isinstance(key_id, bytes) else str(key_id)
            info = ApiKeyInfo(name, str(data["user"]), float(data["created_at"]), str(data["hint"]))
            if user_id is None or info.user_id == user_id:
                found.append(info)
        return sorted(found, key=lambda k: k.created_at)

    async def revoke(self, key_id: str, user_id: str) -> None:
        """Delete key ``key_id`` of ``user_id``; ``key_id`` is the id ``list`` shows or the key
        itself (``hf_...``, as a user holding only the secret would paste it). NotFoundError when
        it does not exist or is another user's (ids do not leak); the message never repeats
        anything but a well-formed key id, so a pasted secret is not echoed to the screen."""
        shown = repr(key_id) if KEY_ID_PATTERN.fullmatch(key_id) else "(the key given)"
        if key_id.startswith(KEY_PREFIX):
            sha = digest(key_id)
            owner = await self._runner.run(lambda r: r.get(self._key(sha)), "revoke an API key")
            key_id = str(json.loads(owner)["id"]) if owner else ""
        raw = await self._runner.run(lambda r: r.hget(self._index, key_id), "revoke an API key") if key_id else None
        data = json.loads(raw) if raw else None
        if data is None or data.get("user") != user_id:
            raise NotFoundError(f"no API key {shown} for user {user_id!r}; `holdfast keys list` shows the ids")

        async def delete(r: Redis) -> object:
            pipe = r.pipeline(transaction=True)
            pipe.delete(self._key(str(data["sha256"])))
            pipe.hdel(self._index, key_id)
            return await pipe.execute()

        await self._runner.run(delete, "revoke an API key")

    async def any_keys(self) -> bool:
        """True when at least one key exists (a "no" is reused for :data:`NO_KEYS_CACHE_SECONDS`)."""
        now = time.monotonic()
        if now < self._no_keys_until:
            return False
        count = await self._runner.run(lambda r: r.hlen(self._index), "count API keys")
        if not count:
            self._no_keys_until = now + NO_KEYS_CACHE_SECONDS
        return bool(count)

    async def check(self, key: str) -> Principal:
        """The principal of ``key``; AuthenticationError when it is unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            raise AuthenticationError("invalid API key")
        raw = await self._runner.run(lambda r: r.get(self._key(digest(key))), "check an API key")
        if not raw:
            raise AuthenticationError("invalid API key")
        data = json.loads(raw)
        return Principal(str(data["user"]), str(data["id"]))


def presented_key(authorization: str | None, api_key_header: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>``, else ``X-API-Key``; None if neither."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key_header and api_key_header.strip():
        return api_key_header.strip()
    return None


class Authenticator:
    """Decides the principal of each request.

    ``local_user`` is the single local user a key-less request acts as while no key exists, or
    None when keys are always required (the server is bound beyond loopback).
    """

    def __init__(self, keys: ApiKeys, local_user: str | None) -> None:
        self.keys = keys
        self.local_user = local_user

    async def principal(self, authorization: str | None, api_key_header: str | None) -> Principal:
        """The principal of a request with these headers. AuthenticationError (401) for a bad
        key, or for no key when one is required."""
        key = presented_key(authorization, api_key_header)
        if key is not None and (key.startswith(KEY_PREFIX) or self.local_user is None):
            return await self.keys.check(key)
        if self.local_user is not None and not await self.keys.any_keys():
            # OpenAI clients always send some key ("sk-..." or a placeholder): while no
            # Holdfast key exists on a loopback server, such a foreign credential is ignored.
            return Principal(self.local_user)
        if key is not None:
            return await self.keys.check(key)
        raise AuthenticationError(
            "an API key is required: send 'Authorization: Bearer <key>' (create one with `holdfast keys create --user NAME`)"
        )
