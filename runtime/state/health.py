"""The Redis health check: PING latency and a write probe, straight to the server, never through the breaker.

The check measures the backend itself: going through ``Guard("redis")`` would report the
breaker (fast failures while it is open) and could never see Redis come back. No answer is
UNHEALTHY. A Redis that answers PING but refuses writes (out of memory under ``noeviction``, a
read-only replica, a failed snapshot with ``stop-writes-on-bgsave-error``, still loading) is
DEGRADED with Redis's reason, found by writing one small expiring key (``probe_key``): the
conversation store journals writes meanwhile. A slow PING (``slow_ping_ms``) is DEGRADED too.
When Redis answers and takes writes, ``on_healthy`` is called (the conversation store replays
its journal from there).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from runtime.core.errors import AppError
from runtime.resilience import CheckResult, HealthMonitor, HealthStatus, is_outage
from runtime.state.client import RedisClient, translated

CHECK_NAME = "redis"


#: The key the write probe sets (under the configured prefix) and its lifetime in milliseconds.
PROBE_KEY = "health:write-probe"
PROBE_TTL_MS = 60_000


def redis_check(
    client: RedisClient,
    *,
    slow_ping_ms: float = 50.0,
    on_healthy: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    probe_key: str = f"holdfast:{PROBE_KEY}",
    unavailable_reason: str = "",
) -> Callable[[], Awaitable[CheckResult]]:
    """An async check function for :meth:`HealthMonitor.register_check` that PINGs ``client``
    and writes ``probe_key`` (expiring after :data:`PROBE_TTL_MS` ms).

    Args:
        client: the Redis client to probe directly (not through the breaker).
        slow_ping_ms: a PING slower than this (milliseconds) reports DEGRADED.
        on_healthy: called after every check where Redis answered and took the write (the
            journal replay hook).
        clock: seconds, for measuring the latency.
        probe_key: the key the write probe sets.
        unavailable_reason: why Redis cannot answer when that is known (the embedded
            redis-server could not start: "embedded Redis could not start: <path> ... read-only;
            ..."); it replaces the connection error of an unanswered PING, which would only name
            the placeholder port nothing listens on.

    Returns:
        A coroutine function returning a :class:`CheckResult`; it never raises for a Redis
        failure: no answer is UNHEALTHY, refused writes are DEGRADED with Redis's reason in
        ``error`` and its reply code in ``details["redis_reply"]`` (``OOM``, ``READONLY``...).
    """

    async def check() -> CheckResult:
        start = clock()
        try:
            await translated(client.ping(), "PING")
        except AppError as exc:
            down: dict[str, Any] = {"slow_ping_ms": slow_ping_ms}
            if unavailable_reason:
                down["embedded"] = "not started"
            return CheckResult(
                status=HealthStatus.UNHEALTHY, error=unavailable_reason or exc.user_message(), details=down
            )
        latency = (clock() - start) * 1000
        try:
            await translated(client.set(probe_key, b"1", px=PROBE_TTL_MS), "the health write probe")
        except AppError as exc:
            refused: dict[str, Any] = {"slow_ping_ms": slow_ping_ms, "writes": "refused"}
            if "redis_reply" in exc.details:
                refused["redis_reply"] = exc.details["redis_reply"]
            status = HealthStatus.DEGRADED if is_outage(exc) else HealthStatus.UNHEALTHY
            return CheckResult(status=status, latency_ms=round(latency, 3), details=refused, error=exc.user_message())
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
    client: RedisClient,
    *,
    slow_ping_ms: float = 50.0,
    on_healthy: Callable[[], None] | None = None,
    timeout: float = 5.0,
    key_prefix: str = "holdfast",
    unavailable_reason: str = "",
) -> None:
    """Register :func:`redis_check` on ``monitor`` under the name ``"redis"``.

    Args:
        timeout: seconds the monitor gives one check before calling it failed.
        key_prefix: the configured key prefix; the write probe's key is ``<prefix>:health:write-probe``.
        slow_ping_ms, on_healthy, unavailable_reason: as for :func:`redis_check`.
    """
    check = redis_check(
        client,
        slow_ping_ms=slow_ping_ms,
        on_healthy=on_healthy,
        probe_key=f"{key_prefix}:{PROBE_KEY}",
        unavailable_reason=unavailable_reason,
    )
    monitor.register_check(CHECK_NAME, check, timeout=timeout)
