"""One turn at a time per conversation, across terminals: the turn lock.

Policy: **queue**. A second turn on the same conversation waits (up to
``[agent].turn_lock_timeout`` seconds) for the running one to finish, then runs on the
updated history; it never interleaves its writes with the other turn's. Within one process
an ``asyncio.Lock`` per conversation orders turns; across processes a Redis lock with an
expiry does (a crashed holder frees it when the expiry passes), kept alive by a heartbeat
while the turn runs. When Redis is down the process-local lock alone is used and the caller
is told (the turn is then degraded: another terminal could interleave).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from runtime.core.errors import AppError, ConflictError, describe

if TYPE_CHECKING:
    from runtime.state.store import RedisStateStore

log = logging.getLogger(__name__)


class TurnBusyError(ConflictError):
    """Another turn on this conversation did not finish within the wait."""


class TurnLock:
    """A held turn lock; release it with :meth:`release` (idempotent)."""

    def __init__(
        self,
        local: asyncio.Lock,
        state: RedisStateStore | None,
        key: str,
        token: str | None,
        heartbeat: asyncio.Task[None] | None,
        degraded_reason: str = "",
    ) -> None:
        self._local = local
        self._state = state
        self._key = key
        self.token = token
        self._heartbeat = heartbeat
        #: Non-empty when only the process-local lock is held (Redis unreachable).
        self.degraded_reason = degraded_reason
        self._released = False

    async def release(self) -> None:
        """Free the turn (process-local lock and Redis lock); a Redis failure is only logged."""
        if self._released:
            return
        self._released = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        try:
            if self.token is not None and self._state is not None:
                await self._state.locks.release(self._key, self.token)
        except AppError as exc:  # the lock expires by itself
            log.warning("could not release turn lock %s: %s", self._key, describe(exc))
        finally:
            self._local.release()


#: Longest life of a turn's Redis lock between keep-alives, in seconds. A process killed mid-turn
#: (a replica SIGKILLed, a TUI whose terminal closed) leaves its lock to expire: with the lock
#: living ``[agent].turn_lock_timeout`` (30 s) every other writer of that conversation waited
#: about 30 s, as long as its own wait, so it could even fail as busy. Renewed every third of it.
MAX_LOCK_TTL = 10.0


class TurnLocks:
    """Hands out :class:`TurnLock` per conversation. ``state`` is the RedisStateStore (None: this
    process only); ``ttl`` is the Redis lock's expiry (at most :data:`MAX_LOCK_TTL`, kept alive
    every third of it) and ``wait`` the longest wait for a busy conversation, both in seconds;
    ``sleep`` paces the keep-alive (injected for tests)."""

    def __init__(
        self,
        state: RedisStateStore | None,
        *,
        ttl: float,
        wait: float,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.state = state
        self.ttl = min(ttl, MAX_LOCK_TTL)
        self.wait = wait
        self._sleep = sleep
        self._local: dict[str, asyncio.Lock] = {}

    async def acquire(self, conversation_id: str) -> TurnLock:
        """Wait (up to ``wait`` seconds) for the conversation's turn. Raises TurnBusyError when
        another turn still holds it; a Redis outage gives a degraded, process-local lock."""
        local = self._local.setdefault(conversation_id, asyncio.Lock())
        try:
            async with asyncio.timeout(self.wait):
                await local.acquire()
        except TimeoutError as exc:
            raise TurnBusyError(
                f"another turn on this conversation is still running (waited {self.wait:g}s)", retryable=False
            ) from exc
        if self.state is None:
            return TurnLock(local, None, "", None, None, "")
        key = self.state.full_key(_resource(conversation_id), namespace="lock")
        try:
            token = await self.state.locks.acquire_within(key, self.ttl, self.wait)
        except ConflictError as exc:
            local.release()
            raise TurnBusyError(
                f"another terminal's turn on this conversation is still running (waited {self.wait:g}s)",
                retryable=False,
            ) from exc
        except AppError as exc:
            return TurnLock(
                local,
                self.state,
                key,
                None,
                None,
                f"turn lock unavailable ({describe(exc)}); only this process is serialised",
            )
        except BaseException:
            local.release()
            raise
        beat = asyncio.create_task(self._keep_alive(self.state, key, token), name=f"turn-lock-{conversation_id}")
        return TurnLock(local, self.state, key, token, beat)

    async def held_elsewhere(self, conversation_id: str) -> bool:
        """True when a turn of the conversation runs in another process (or another runtime): its
        Redis turn lock is held and this object holds no turn of it. False without Redis
        (``state`` None). Raises the AppErrors of the Redis read (one EXISTS)."""
        local = self._local.get(conversation_id)
        if self.state is None or (local is not None and local.locked()):
            return False
        return await self.state.exists(_resource(conversation_id), namespace="lock")

    async def _keep_alive(self, state: RedisStateStore, key: str, token: str) -> None:
        # Extend well before expiry so a slow model or a user thinking about a permission
        # prompt never lets another terminal in mid-turn.
        while True:
            await self._sleep(self.ttl / 3)
            try:
                if not await state.locks.extend(key, token, self.ttl):
                    log.warning("turn lock %s was lost (expired)", key)
                    return
            except AppError as exc:
                log.warning("could not extend turn lock %s: %s", key, describe(exc))


def _resource(conversation_id: str) -> str:
    """The lock resource of a conversation's turns (``<prefix>:lock:turn:<id>`` in Redis)."""
    return f"turn:{conversation_id}"
