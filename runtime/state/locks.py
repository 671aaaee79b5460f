"""Distributed locks on Redis: owner token, ``SET NX PX`` in a script, Lua check-and-delete / check-and-extend.

A lock is a key holding a random token (``secrets``, 128 bits) with an expiry, so a crashed
holder cannot keep it forever. Only the holder of the token can release or extend it: the
check and the delete happen in one script, so a holder whose lock expired and was taken by
someone else can never delete the new owner's lock. ``hold()`` waits a bounded time, with
an injected clock and sleep so tests never wait on the wall clock.

A lock must not outlive its requester's patience. When an acquire times out on the client (a
frozen or slow Redis), the request may still be sitting in the server's socket buffer and run
later, taking a lock nobody will release: the next turn would wait out its whole expiry. So a
requester that gives up *abandons* its token: one script, retried in the background until
Redis answers, deletes the lock if that token holds it and leaves a short-lived marker for the
token; the acquire script refuses a token that has a marker. Whichever of the two runs first,
the late acquire never leaves a lock behind. Release does the same for a token one of whose
earlier attempts is still in doubt (the guard retried it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from runtime.core.errors import AppError, ConflictError, ErrorType, ValidationError
from runtime.state.client import RedisClient, RedisRunner, translated

log = logging.getLogger(__name__)

# KEYS[1] the lock, KEYS[2] the abandon marker of this token; ARGV[1] the token, ARGV[2] ms.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Same keys; ARGV[2] is the marker's lifetime in ms.
_ABANDON = """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
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

#: Shortest life of an abandon marker, in seconds (it is at least twice the lock's ttl).
MARKER_MIN_SECONDS = 30.0
#: Background tries to abandon a token before giving up (the lock then expires by itself).
ABANDON_ATTEMPTS = 100
#: Longest pause between two abandon tries, in seconds (they start at 50 ms and double).
ABANDON_MAX_DELAY = 1.0
#: Error types after which a request may still run on the server later (it was sent, or may
#: have been, and no reply came back).
_IN_DOUBT = frozenset({ErrorType.TIMEOUT, ErrorType.EXTERNAL_SERVICE})


def marker_key(key: str, token: str) -> str:
    """The abandon marker of ``token`` for the lock ``key``, in the same Redis Cluster slot.

    A key with a hash tag (``{...}``) keeps it; any other key becomes the tag itself, so both
    hash to the same slot (Redis Cluster spec, "hash tags").
    """
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return f"{key}:abandoned:{token}"
    return f"{{{key}}}:abandoned:{token}"


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
        self._acquire = runner.client.register_script(_ACQUIRE)
        self._release = runner.client.register_script(_RELEASE)
        self._abandon = runner.client.register_script(_ABANDON)
        self._extend = runner.client.register_script(_EXTEND)
        #: Held tokens with an earlier attempt still in doubt -> their marker's life in ms.
        self._in_doubt: dict[str, int] = {}
        self._abandoning: set[asyncio.Task[None]] = set()

    async def acquire(self, key: str, ttl: float) -> str | None:
        """Take the lock at ``key`` for ``ttl`` seconds without waiting (one script: ``SET NX PX``
        unless this token was abandoned).

        A request that fails without a reply (timeout, lost connection, cancellation) may
        still run on the server later: its token is abandoned in the background (see the
        module docstring), so that late run can never leave a lock nobody releases.

        Returns:
            The owner token (32 hex characters), or None if someone else holds the lock.

        Raises:
            ValidationError: ``ttl`` is not positive.
            AppError: Redis failed (the errors of :meth:`RedisRunner.run`).
        """
        ms = _to_ms(ttl)
        token = secrets.token_hex(16)
        keys = [key, marker_key(key, token)]
        attempts = 0

        async def attempt(r: RedisClient) -> int:
            nonlocal attempts
            attempts += 1
            return int(await self._acquire(keys=keys, args=[token, ms], client=r))

        try:
            ok = await self._runner.run(attempt, "lock acquire") == 1
        except AppError as exc:
            if exc.error_type in _IN_DOUBT or attempts > 1:
                self._abandon_later(key, token, ttl)
            raise
        except BaseException:
            self._abandon_later(key, token, ttl)
            raise
        if attempts > 1:
            # An earlier attempt of this token timed out and may still run after we release.
            if ok:
                self._in_doubt[token] = _marker_ms(ttl)
            else:
                self._abandon_later(key, token, ttl)
        return token if ok else None

    async def release(self, key: str, token: str) -> bool:
        """Delete the lock only if ``token`` still owns it (one check-and-delete script).

        A token with an attempt still in doubt is abandoned instead (same check-and-delete,
        plus the marker that refuses that attempt if it runs later).

        Returns:
            True if deleted; False for a non-owner or an expired lock.
        """
        marker_ms = self._in_doubt.pop(token, None)
        if marker_ms is not None:
            keys = [key, marker_key(key, token)]
            result = await self._runner.run(
                lambda r: self._abandon(keys=keys, args=[token, marker_ms], client=r), "lock release"
            )
        else:
            result = await self._runner.run(lambda r: self._release(keys=[key], args=[token], client=r), "lock release")
        return int(result) == 1

    def _abandon_later(self, key: str, token: str, ttl: float) -> None:
        """Start abandoning ``token`` in the background (no-op without a running event loop)."""
        try:
            task = asyncio.get_running_loop().create_task(
                self._abandon_until_answered(key, token, _marker_ms(ttl)), name=f"lock-abandon-{token[:8]}"
            )
        except RuntimeError:
            return
        self._abandoning.add(task)
        task.add_done_callback(self._abandoning.discard)

    async def _abandon_until_answered(self, key: str, token: str, marker_ms: int) -> None:
        # Straight to the client, not through the guard: an open breaker must not stop the
        # clean-up, and each try is one idempotent script.
        keys = [key, marker_key(key, token)]
        delay = 0.05
        for _ in range(ABANDON_ATTEMPTS):
            try:
                deleted = await translated(
                    self._abandon(keys=keys, args=[token, marker_ms], client=self._runner.client), "lock abandon"
                )
            except AppError as exc:
                log.debug("abandoning lock %s not done yet: %s", key, exc.user_message())
                await self._sleep(delay)
                delay = min(delay * 2, ABANDON_MAX_DELAY)
                continue
            if int(deleted):
                log.warning("lock %s was taken after its requester gave up; released", key)
            return
        log.warning("could not abandon lock %s after %d tries; it expires by itself", key, ABANDON_ATTEMPTS)

    async def wait_abandoned(self) -> None:
        """Wait until every background abandon has finished (tests, shutdown)."""
        while self._abandoning:
            await asyncio.gather(*tuple(self._abandoning), return_exceptions=True)

    def pending_abandons(self) -> int:
        """How many abandoned tokens are still waiting for Redis to answer."""
        return len(self._abandoning)

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


def _marker_ms(ttl: float) -> int:
    return max(1, int(max(2 * ttl, MARKER_MIN_SECONDS) * 1000))


def _to_ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValidationError(f"lock timeout must be > 0 seconds, got {seconds}")
    return max(1, int(seconds * 1000))
