"""A Guard around the real redis-server: outage, fast rejection, probe, recovery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.core.errors import CircuitOpenError, ServiceUnavailableError
from runtime.resilience import CircuitState, Resilience
from runtime.state.embedded_redis import EmbeddedRedis
from tests.support.clock import FakeClock, RecordingSleep
from tests.support.resilience import config_with

pytestmark = pytest.mark.redis


def redis_call(op: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """What a client does: translate redis-py's errors inside the fn it gives the guard."""

    async def call() -> Any:
        try:
            return await op()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ServiceUnavailableError(f"redis: {exc}", service="redis") from exc

    return call


async def test_outage_opens_the_breaker_and_recovery_closes_it(
    redis_server: EmbeddedRedis, redis_url: str, clock: FakeClock, sleep: RecordingSleep
) -> None:
    res = Resilience(
        config_with(
            "redis",
            max_attempts=2,
            initial_delay=0.1,
            jitter=False,
            failure_threshold=2,
            recovery_timeout=5.0,
            success_threshold=1,
            timeout=2.0,
        ),
        clock=clock,
        sleep=sleep,
    )
    guard = res.guard("redis")
    client = aioredis.from_url(redis_url, socket_connect_timeout=1.0, retry_on_timeout=False)
    try:
        await guard.call(redis_call(lambda: client.set("k", "v")))
        assert await guard.call(redis_call(lambda: client.get("k"))) == b"v"

        redis_server.kill()
        with pytest.raises((ServiceUnavailableError, CircuitOpenError)):
            await guard.call(redis_call(lambda: client.get("k")))
        assert guard.breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError) as info:
            await guard.call(redis_call(lambda: client.get("k")))
        assert info.value.retry_after == pytest.approx(5.0)

        redis_server.start()
        clock.advance(5.0)
        await guard.call(redis_call(lambda: client.set("k", "back")))  # the half-open probe
        assert guard.breaker.state is CircuitState.CLOSED
        assert await guard.call(redis_call(lambda: client.get("k"))) == b"back"
    finally:
        await client.aclose()
