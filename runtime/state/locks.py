"""Distributed locks on Redis: owner token, ``SET NX PX``, Lua check-and-delete / check-and-extend.

A lock is a key holding a random token (``secrets``, 128 bits) with an expiry, so a crashed
holder cannot keep it forever. Only the holder of the token can release or extend it: the
check and the delete happen in one script, so a holder whose lock expired and was taken by
someone else can never delete the new owner's lock. ``hold()`` waits a bounded time, with
an injected clock and sleep so tests never wait on the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from runtime.core.errors import AppError, ConflictError, ValidationError
from runtime.state.client import RedisRunner

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class LockManager:
    """Acquire, release and extend locks on fully qualified keys."""

    def __init__(
        self,
        runner: RedisRunner,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._runner = runner
        self._clock = clock
        self._sleep = sleep
        self._release = runner.client.register_script(_RELEASE)
        self._extend = runner.client.register_script(_EXTEND)

    async def acquire(self, key: str, ttl: float) -> str | None:
        """Take the lock at ``key`` (one ``SET NX PX``) for ``ttl`` seconds.

        Returns:
            The owner token (32 hex characters), or None if someone else holds the lock.

        Raises:
            ValidationError: ``ttl`` is not positive.
        """
        ms = _to_ms(ttl)
        token = secrets.token_hex(16)
        ok = await self._runner.run(lambda r: r.set(key, token, nx=True, px=ms), "lock acquire")
        return token if ok else None

    async def release(self, key: str, token: str) -> bool:
        """Delete the lock only if ``token`` still owns it (one check-and-delete script).

        Returns:
            True if deleted; False for a non-owner or an expired lock.
        """
        result = await self._runner.run(lambda r: self._release(keys=[key], args=[token], client=r), "lock release")
        return int(result) == 1

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        """Reset the lock's expiry to ``ttl`` seconds from now, only for its owner.

        Returns:
            True if extended; False if ``token`` no longer owns the lock.

        Raises:
            ValidationError: ``ttl`` is not positive.
        """
        ms = _to_ms(ttl)
        result = await self._runner.run(lambda r: self._extend(keys=[key], args=[token, ms], client=r), "lock extend")
        return int(result) == 1

    async def acquire_within(self, key: str, ttl: float, wait: float) -> str:
        """Retry :meth:`acquire` with capped, jittered backoff for at most ``wait`` seconds.

        The backoff starts at 5 ms and doubles up to 100 ms, each delay jittered by 0.5-1.5x.

        Args:
            ttl: seconds the lock lives once taken.
            wait: seconds to keep trying (measured on the injected clock).

        Returns:
            The owner token.

        Raises:
            ConflictError: the lock was still held after ``wait`` seconds.
            ValidationError: ``ttl`` is not positive.
        """
        deadline = self._clock() + wait
        delay = 0.005
        while True:
            token = await self.acquire(key, ttl)
            if token is not None:
                return token
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ConflictError(
                    f"lock {key!r} is held by someone else (waited {wait:g}s)",
                    details={"lock": key, "waited": wait},
                    service="redis",
                )
            # Jitter keeps many contenders from retrying in lockstep.
            await self._sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 2, 0.1)

    @asynccontextmanager
    async def hold(self, key: str, ttl: float = 10.0, wait: float = 5.0) -> AsyncIterator[str]:
        """``async with locks.hold(key) as token: ...``: hold the lock for the block, then release it.

        Args:
            ttl: seconds the lock lives (it is not extended while the block runs).
            wait: seconds to wait for it, as in :meth:`acquire_within`.

        Raises:
            ConflictError: the lock was not acquired within ``wait`` seconds.

        A failed release is logged, not raised: the lock expires by itself.
        """
        token = await self.acquire_within(key, ttl, wait)
        try:
            yield token
        finally:
            try:
                await self.release(key, token)
            except AppError as exc:  # the lock expires by itself; don't mask the block's outcome
                log.warning("could not release lock %s: %s", key, exc.user_message())


def _to_ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValidationError(f"lock timeout must be > 0 seconds, got {seconds}")
    return max(1, int(seconds * 1000))
