"""The LLM health check: reach the endpoint directly and time it.

It bypasses Guard("llm") on purpose: a probe must see the endpoint itself, not the breaker,
and must not count against the breaker either. The spec marks an unreachable LLM as
DEGRADED, not UNHEALTHY: the chat keeps working on fallbacks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from runtime.core.errors import AppError, describe
from runtime.llm.client import LLMClient
from runtime.resilience import CheckResult, HealthStatus


def llm_health_check(
    client: LLMClient, *, clock: Callable[[], float] = time.monotonic
) -> Callable[[], Awaitable[CheckResult]]:
    """A check for ``HealthMonitor.register_check("llm", ...)`` that probes ``client``'s endpoint.

    Returns:
        A coroutine function returning a :class:`CheckResult`: HEALTHY with the latency in
        milliseconds (``clock`` is in seconds) and how the endpoint answered (``GET /models``
        or a one-token completion); DEGRADED with the error when it did not. It never raises
        an AppError.
    """

    async def check() -> CheckResult:
        started = clock()
        details: dict[str, object] = {"endpoint": client.endpoint, "breaker": client.guard.breaker.state.value}
        try:
            details.update(await client.probe())
        except AppError as exc:
            latency = (clock() - started) * 1000.0
            details["error_type"] = exc.error_type.value
            return CheckResult(HealthStatus.DEGRADED, latency, details, describe(exc))
        return CheckResult(HealthStatus.HEALTHY, (clock() - started) * 1000.0, details)

    return check
