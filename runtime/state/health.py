"""The Redis health check: PING latency straight to the server, never through the breaker.

The check measures the backend itself: going through ``Guard("redis")`` would report the
breaker (fast failures while it is open) and could never see Redis come back. Slow
(``slow_ping_ms``) is DEGRADED, no answer is UNHEALTHY. When Redis answers, ``on_healthy``
is called (the conversation store replays its journal from there).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from runtime.core.errors import AppError
from runtime.resilience import CheckResult, HealthMonitor, HealthStatus
from runtime.state.client import translated

CHECK_NAME = "redis"


def redis_check(
    client: aioredis.Redis,
    *,
    slow_ping_ms: float = 50.0,
    on_healthy: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[], Awaitable[CheckResult]]:
    """An async check function for :meth:`HealthMonitor.register_check` that PINGs ``client``.

    Args:
        client: the Redis client to PING directly (not through the breaker).
        slow_ping_ms: a PING slower than this (milliseconds) reports DEGRADED.
        on_healthy: called after every answered PING (the journal replay hook).
        clock: seconds, for measuring the latency.

    Returns:
        A coroutine function returning a :class:`CheckResult`; it never raises for a Redis
        failure (that is an UNHEALTHY result with the user-facing reason).
    """

    async def check() -> CheckResult:
        start = clock()
        try:
            await translated(client.ping(), "PING")
        except AppError as exc:
            return CheckResult(
                status=HealthStatus.UNHEALTHY, error=exc.user_message(), details={"slow_ping_ms": slow_ping_ms}
            )
        latency = (clock() - start) * 1000
        if on_healthy is not None:
            on_healthy()
        status = HealthStatus.DEGRADED if latency > slow_ping_ms else HealthStatus.HEALTHY
        details: dict[str, Any] = {"slow_ping_ms": slow_ping_ms}
        return CheckResult(
            status=status,
            latency_ms=round(latency, 3),
            details=details,
            error=f"PING took {latency:.0f} ms" if status is HealthStatus.DEGRADED else None,
        )

    return check


def register_redis_health(
    monitor: HealthMonitor,
    client: aioredis.Redis,
    *,
    slow_ping_ms: float = 50.0,
    on_healthy: Callable[[], None] | None = None,
    timeout: float = 5.0,
) -> None:
    """Register :func:`redis_check` on ``monitor`` under the name ``"redis"``.

    Args:
        timeout: seconds the monitor gives one check before calling it failed.
        slow_ping_ms, on_healthy: as for :func:`redis_check`.
    """
    monitor.register_check(
        CHECK_NAME, redis_check(client, slow_ping_ms=slow_ping_ms, on_healthy=on_healthy), timeout=timeout
    )
