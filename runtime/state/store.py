"""RedisStateStore: namespaced key/value, hashes, lists, sets, counters, locks and pub/sub.

The spec's public API, made correct: every call goes through ``Guard("redis")`` (via
:class:`RedisRunner`), values are JSON only (a value JSON cannot hold is a
:class:`ValidationError`, never pickled nor stringified), keys carry the configured prefix,
and lock release/extend are owner-checked in Lua.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio.client import PubSub

from runtime.core.errors import ValidationError
from runtime.state import codec
from runtime.state.client import RedisRunner, translated
from runtime.state.keys import Keys
from runtime.state.locks import LockManager

_MAX_KEY_CHARS = 1024
_SET_MEMBER_TYPES = (str, int, float, bool, type(None))


class RedisStateStore:
    """Distributed state on Redis; every method is one round trip.

    The method names are the spec's ``RedisStateStore`` (state-and-errors-spec.md). Values are
    anything :func:`runtime.state.codec.dumps` accepts (JSON); ``namespace`` and ``key`` become
    ``<prefix>:<namespace>:<key>``. Every Redis call can raise the AppErrors of
    :func:`runtime.state.client.translate` (``ServiceUnavailableError`` when Redis is
    unreachable, ``OperationTimeoutError``, ...) or ``CircuitOpenError`` from the guard, and
    every method raises :class:`ValidationError` for a bad key, namespace or value.
    """

    def __init__(
        self,
        runner: RedisRunner,
        *,
        key_prefix: str = "holdfast",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._runner = runner
        self._keys = Keys(key_prefix)
        self.locks = LockManager(runner, clock=clock, sleep=sleep)

    def full_key(self, key: str, namespace: str = "state") -> str:
        """The Redis key ``<prefix>:<namespace>:<key>``.

        Raises:
            ValidationError: ``namespace`` is not a safe id, or ``key`` is not 1-1024 characters
                of valid Unicode.
        """
        codec.check_id(namespace, "namespace")
        codec.check_text(key, "key")
        if not key or len(key) > _MAX_KEY_CHARS:
            raise ValidationError(f"key must be 1-{_MAX_KEY_CHARS} characters, got {len(key)}")
        return self._keys.state(namespace, key)

    # ------------------------------------------------------------ key/value

    async def set(self, key: str, value: Any, ttl: float | None = None, namespace: str = "state") -> bool:
        """Store ``value`` (JSON); ``ttl`` in seconds, None = no expiry."""
        k = self.full_key(key, namespace)
        data = codec.dumps(value, "value")
        px = _ttl_ms(ttl)
        return bool(await self._runner.run(lambda r: r.set(k, data, px=px), "SET"))

    async def get(self, key: str, namespace: str = "state", default: Any = None) -> Any:
        """The decoded JSON value at ``key``, or ``default`` if it does not exist."""
        k = self.full_key(key, namespace)
        raw = await self._runner.run(lambda r: r.get(k), "GET")
        return default if raw is None else codec.loads(raw)

    async def delete(self, key: str, namespace: str = "state") -> bool:
        """Delete ``key``; True if it existed."""
        k = self.full_key(key, namespace)
        return int(await self._runner.run(lambda r: r.delete(k), "DEL")) > 0

    async def exists(self, key: str, namespace: str = "state") -> bool:
        """True if ``key`` exists (and has not expired)."""
        k = self.full_key(key, namespace)
        return int(await self._runner.run(lambda r: r.exists(k), "EXISTS")) > 0

    async def ttl(self, key: str, namespace: str = "state") -> float | None:
        """Seconds until ``key`` expires; None if it has no expiry or does not exist."""
        k = self.full_key(key, namespace)
        ms = int(await self._runner.run(lambda r: r.pttl(k), "PTTL"))
        return ms / 1000 if ms >= 0 else None

    # ------------------------------------------------------------ hashes

    async def hset(self, key: str, field: str, value: Any, namespace: str = "state") -> bool:
        """Set one field; True if the field is new."""
        k = self.full_key(key, namespace)
        codec.check_text(field, "field")
        data = codec.dumps(value, "value")
        return int(await self._runner.run(lambda r: r.hset(k, field, data), "HSET")) == 1

    async def hget(self, key: str, field: str, namespace: str = "state") -> Any:
        """The decoded value of one hash field, or None if the field or hash does not exist."""
        k = self.full_key(key, namespace)
        codec.check_text(field, "field")
        return codec.loads(await self._runner.run(lambda r: r.hget(k, field), "HGET"))

    async def hgetall(self, key: str, namespace: str = "state") -> dict[str, Any]:
        """Every field of the hash with its decoded value; ``{}`` if it does not exist."""
        k = self.full_key(key, namespace)
        raw = await self._runner.run(lambda r: r.hgetall(k), "HGETALL")
        return {(f.decode("utf-8") if isinstance(f, bytes) else f): codec.loads(v) for f, v in raw.items()}

    # ------------------------------------------------------------ lists

    async def lpush(self, key: str, value: Any, namespace: str = "state") -> int:
        """Prepend ``value`` to the list; its new length."""
        k = self.full_key(key, namespace)
        data = codec.dumps(value, "value")
        return int(await self._runner.run(lambda r: r.lpush(k, data), "LPUSH"))

    async def rpush(self, key: str, value: Any, namespace: str = "state") -> int:
        """Append ``value`` to the list; its new length."""
        k = self.full_key(key, namespace)
        data = codec.dumps(value, "value")
        return int(await self._runner.run(lambda r: r.rpush(k, data), "RPUSH"))

    async def lrange(self, key: str, start: int, stop: int, namespace: str = "state") -> list[Any]:
        """Decoded items ``start`` to ``stop`` inclusive (Redis LRANGE: negative indexes count from the end)."""
        k = self.full_key(key, namespace)
        raw = await self._runner.run(lambda r: r.lrange(k, start, stop), "LRANGE")
        return [codec.loads(v) for v in raw]

    # ------------------------------------------------------------ sets

    async def sadd(self, key: str, value: Any, namespace: str = "state") -> int:
        """Add a scalar member (lists and dicts have no stable set identity and are refused).

        Returns:
            1 if the member was added, 0 if it was already there.
        """
        if not isinstance(value, _SET_MEMBER_TYPES):
            raise ValidationError(f"set members must be str, int, float, bool or None, got {type(value).__name__}")
        k = self.full_key(key, namespace)
        data = codec.dumps(value, "value")
        return int(await self._runner.run(lambda r: r.sadd(k, data), "SADD"))

    async def smembers(self, key: str, namespace: str = "state") -> builtins.set[Any]:
        """Every member of the set, decoded; an empty set if it does not exist."""
        k = self.full_key(key, namespace)
        raw = await self._runner.run(lambda r: r.smembers(k), "SMEMBERS")
        return {codec.loads(v) for v in raw}

    # ------------------------------------------------------------ counters

    async def increment(self, key: str, amount: int = 1, namespace: str = "state") -> int:
        """Atomically add ``amount`` (a missing key counts from 0); the new value.

        Raises:
            InternalError: the key holds something that is not an integer.
        """
        k = self.full_key(key, namespace)
        return int(await self._runner.run(lambda r: r.incrby(k, amount), "INCRBY"))

    async def decrement(self, key: str, amount: int = 1, namespace: str = "state") -> int:
        """Atomically subtract ``amount`` (a missing key counts from 0); the new value.

        Raises:
            InternalError: the key holds something that is not an integer.
        """
        k = self.full_key(key, namespace)
        return int(await self._runner.run(lambda r: r.decrby(k, amount), "DECRBY"))

    # ------------------------------------------------------------ locks

    # In the lock methods ``timeout`` is the spec's name for the lock's lifetime in seconds, not
    # a deadline for the call (hence the ASYNC109 exemptions).
    async def acquire_lock(self, resource: str, timeout: float = 10, namespace: str = "lock") -> str | None:  # noqa: ASYNC109
        """Take the lock on ``resource`` for ``timeout`` seconds without waiting.

        Returns:
            The owner token, or None if someone else holds ``resource``.

        Raises:
            ValidationError: ``timeout`` is not positive.
        """
        return await self.locks.acquire(self.full_key(resource, namespace), timeout)

    async def release_lock(self, resource: str, lock_value: str, namespace: str = "lock") -> bool:
        """Release the lock if ``lock_value`` (the owner token) still owns it; False otherwise."""
        return await self.locks.release(self.full_key(resource, namespace), lock_value)

    async def extend_lock(
        self,
        resource: str,
        lock_value: str,
        timeout: float = 10,  # noqa: ASYNC109
        namespace: str = "lock",
    ) -> bool:
        """Reset the lock's expiry to ``timeout`` seconds from now, only for its owner; False otherwise."""
        return await self.locks.extend(self.full_key(resource, namespace), lock_value, timeout)

    @asynccontextmanager
    async def lock(
        self,
        resource: str,
        timeout: float = 10,  # noqa: ASYNC109
        wait: float = 5.0,
        namespace: str = "lock",
    ) -> AsyncIterator[str]:
        """Hold ``resource`` for the block (lifetime ``timeout`` seconds); yields the owner token.

        Raises:
            ConflictError: the lock was not acquired within ``wait`` seconds.
        """
        async with self.locks.hold(self.full_key(resource, namespace), timeout, wait) as token:
            yield token

    # ------------------------------------------------------------ pub/sub

    async def publish(self, channel: str, message: Any) -> int:
        """Publish JSON ``message``; the number of subscribers that received it."""
        codec.check_id(channel, "channel")
        data = codec.dumps(message, "message")
        ch = self._keys.channel(channel)
        return int(await self._runner.run(lambda r: r.publish(ch, data), "PUBLISH"))

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        """``async with store.subscribe("a") as sub: async for channel, msg in sub: ...``

        Yields a :class:`Subscription` to the named channels (prefixed like keys); it is
        unsubscribed and closed when the block ends.

        Raises:
            ValidationError: a channel name is not a safe id.
        """
        names = [self._keys.channel(codec.check_id(c, "channel")) for c in channels]
        pubsub = self._runner.client.pubsub(ignore_subscribe_messages=True)
        await self._runner.run(lambda r: pubsub.subscribe(*names), "SUBSCRIBE")
        try:
            yield Subscription(pubsub, len(self._keys.channel("")))
        finally:
            await _unsubscribe(pubsub)
            await pubsub.aclose()


async def _unsubscribe(pubsub: PubSub, timeout: float = 1.0) -> None:  # noqa: ASYNC109 - a bounded wait
    """UNSUBSCRIBE and read the server's confirmations (at most ``timeout`` seconds), so a PUBLISH
    sent after the block ends no longer counts this subscriber. Closing the connection alone
    leaves that to the server noticing the disconnect, which on a Redis Cluster node can come
    after the next PUBLISH. Any failure is ignored: the connection is closed right after."""
    try:
        async with asyncio.timeout(timeout):
            await pubsub.unsubscribe()
            while pubsub.subscribed:
                await pubsub.get_message(ignore_subscribe_messages=False, timeout=0.05)
    except Exception:  # noqa: BLE001 - best effort before closing; the close itself always runs
        return


class Subscription:
    """Messages of subscribed channels as ``(channel, value)``; channel names without prefix."""

    def __init__(self, pubsub: PubSub, prefix_len: int) -> None:
        self._pubsub = pubsub
        self._prefix_len = prefix_len

    # Like queue.get(timeout=...): the wait is part of the read, and running out is a None result.
    async def get(self, timeout: float = 1.0) -> tuple[str, Any] | None:  # noqa: ASYNC109
        """The next message as ``(channel, decoded value)``, or None if none arrived within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Subscribe confirmations also come back as None; keep reading until the deadline.
            remaining = max(0.0, deadline - loop.time())
            msg = await translated(
                self._pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining), "pub/sub read"
            )
            if msg is not None:
                return msg["channel"].decode("utf-8")[self._prefix_len :], codec.loads(msg["data"])
            if loop.time() >= deadline:
                return None

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            item = await self.get(timeout=1.0)
            if item is not None:
                yield item


def _ttl_ms(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValidationError(f"ttl must be > 0 seconds, got {ttl}")
    return max(1, int(ttl * 1000))
