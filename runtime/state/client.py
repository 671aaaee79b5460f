"""The Redis connection and the boundary where redis-py's exceptions become AppErrors.

One :func:`make_redis_client` per process gives one connection pool with short socket
timeouts and *no* redis-py retries: retries belong to ``Guard("redis")`` alone, so a killed
server fails each attempt in milliseconds and the breaker sees every failure.

:class:`RedisRunner` is what the stores use: ``await runner.run(lambda r: r.get(key))``
runs the operation through the guard, translating redis-py errors *inside* the guarded
function (the guard only retries AppErrors marked retryable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from runtime.core.errors import AppError, ConflictError, NotFoundError, ValidationError
from runtime.resilience.classify import translate_redis

T = TypeVar("T")

SERVICE = "redis"

#: Error prefixes our Lua scripts raise with ``redis.error_reply``; mapped to typed errors.
SCRIPT_NOT_FOUND = "HFNOTFOUND"
SCRIPT_INVALID = "HFINVALID"
SCRIPT_CONFLICT = "HFCONFLICT"


class GuardLike(Protocol):
    """The part of ``runtime.resilience.Guard`` the stores use."""

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` with retries, breaker and timeout; raises AppErrors only."""
        ...


def make_redis_client(
    url: str,
    *,
    connect_timeout: float = 1.0,
    socket_timeout: float = 2.0,
    max_connections: int = 64,
    pool_timeout: float = 5.0,
    **kwargs: Any,
) -> aioredis.Redis:
    """A client with one bounded pool that fails fast when the server is gone.

    ``retry=Retry(NoBackoff(), 0)`` switches off redis-py's own retry loop (on by default
    since redis-py 6), which would otherwise multiply with the guard's attempts. The pool
    is a blocking one: a burst of concurrent calls waits up to ``pool_timeout`` for a
    connection instead of failing with "Too many connections".
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        timeout=pool_timeout,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        max_connections=max_connections,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
        health_check_interval=0,
        **kwargs,
    )
    return aioredis.Redis.from_pool(pool)


def translate(exc: BaseException, operation: str = "") -> AppError:
    """The AppError for a redis-py (or socket) exception; the cause is chained by the caller.

    Our own Lua scripts' replies (:data:`SCRIPT_NOT_FOUND`, :data:`SCRIPT_INVALID`,
    :data:`SCRIPT_CONFLICT`) become NotFoundError, ValidationError and ConflictError; every
    other failure is classified by :func:`runtime.resilience.classify.translate_redis`, the
    one rule (a Redis that refuses writes with OOM, READONLY, MISCONF or LOADING is an outage:
    ServiceUnavailableError, so the conversation store journals the write).
    """
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, rexc.ResponseError):
        text = str(exc)
        head = text.split(" ", 1)[0]
        if head == SCRIPT_NOT_FOUND:
            return NotFoundError(text[len(head) :].strip() or "not found", service=SERVICE)
        if head == SCRIPT_INVALID:
            return ValidationError(text[len(head) :].strip() or "invalid request", service=SERVICE)
        if head == SCRIPT_CONFLICT:
            return ConflictError(text[len(head) :].strip() or "conflict", service=SERVICE)
    return translate_redis(exc, operation, service=SERVICE)


async def translated(awaitable: Awaitable[T], operation: str = "") -> T:
    """Await ``awaitable``, re-raising a redis-py, timeout or OS failure as the AppError
    :func:`translate` gives (the original is the ``__cause__``)."""
    try:
        return await awaitable
    except AppError:
        raise
    except (TimeoutError, rexc.RedisError, OSError) as exc:
        raise translate(exc, operation) from exc


class RedisRunner:
    """Runs Redis operations through the guard, with errors translated inside the guarded call."""

    def __init__(self, client: aioredis.Redis, guard: GuardLike) -> None:
        self.client = client
        self.guard = guard

    async def run(self, op: Callable[[aioredis.Redis], Awaitable[T]], operation: str = "") -> T:
        """``await op(client)`` through the guard; ``operation`` names it in error messages.

        Raises the AppErrors of :func:`translate` (after the guard's retries) or
        :class:`runtime.core.errors.CircuitOpenError` while the breaker is open.
        """
        client = self.client
        return await self.guard.call(lambda: translated(op(client), operation))

    async def hgetall_many(self, keys: list[str], operation: str = "") -> list[dict[bytes, bytes]]:
        """HGETALL of each key in one pipelined round trip (an empty dict for a missing key)."""

        async def fetch(r: aioredis.Redis) -> list[dict[bytes, bytes]]:
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return await pipe.execute()

        return await self.run(fetch, operation)

    async def ping(self) -> bool:
        """PING through the guard: True when Redis answers, else the AppError of :meth:`run`."""
        return bool(await self.run(lambda r: r.ping(), "PING"))
