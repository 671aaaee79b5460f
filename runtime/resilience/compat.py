"""The spec's public names, kept as thin aliases over the production classes.

The spec (``state-and-errors-spec.md``) names ``RetryConfig``, ``RetryManager``,
``CircuitBreakerManager``, ``FallbackStrategy``, ``CacheBasedFallback`` and ``HealthCheck``.
Code written against those names works, with the production behaviour (typed errors,
classified retries, injected clock and sleep) rather than the sample code's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.core.errors import AppError, describe
from runtime.core.events import EventBus, RetryScheduled
from runtime.resilience.breaker import BreakerRegistry
from runtime.resilience.classify import translate
from runtime.resilience.fallback import CacheFallback, FallbackChain
from runtime.resilience.health import HealthMonitor
from runtime.resilience.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

#: The spec's service names and the config sections they mean.
SPEC_SERVICE_NAMES = {"openai": "llm", "mcp": "tools", "database": "redis"}


@dataclass(frozen=True)
class RetryConfig:
    """The spec's retry settings (which errors retry is decided by ``AppError.retryable``).

    ``max_attempts`` counts the first call; delays are seconds, attempt n waiting up to
    ``initial_delay * exponential_base**(n-1)`` capped at ``max_delay``, with full jitter
    when ``jitter`` is on.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    exponential_base: float = 2.0
    jitter: bool = True

    @classmethod
    def from_settings(cls, s: ServiceResilience) -> RetryConfig:
        """The retry part of a service's settings (``multiplier`` becomes ``exponential_base``)."""
        return cls(s.max_attempts, s.initial_delay, s.max_delay, s.multiplier, s.jitter)

    def to_settings(self, base: ServiceResilience | None = None) -> ServiceResilience:
        """``base`` (or the defaults) with these retry fields replaced.

        Raises:
            pydantic.ValidationError: a field is out of range for :class:`ServiceResilience`.
        """
        data = (base or ServiceResilience()).model_dump()
        data.update(
            max_attempts=self.max_attempts,
            initial_delay=self.initial_delay,
            max_delay=self.max_delay,
            multiplier=self.exponential_base,
            jitter=self.jitter,
        )
        return ServiceResilience(**data)


class RetryManager:
    """The spec's retry-only helper (no breaker, no timeout): use a Guard for real calls."""

    def __init__(
        self,
        config: ResilienceConfig | None = None,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.config = config or ResilienceConfig()
        self._bus = bus
        self._clock = clock
        self._sleep = sleep

    def _settings(self, service: str) -> ServiceResilience:
        return self.config.for_service(SPEC_SERVICE_NAMES.get(service, service))

    def get_config(self, service: str) -> RetryConfig:
        """The retry settings of ``service``; the spec's names ``openai``, ``mcp``, ``database``
        mean the ``llm``, ``tools`` and ``redis`` sections."""
        return RetryConfig.from_settings(self._settings(service))

    async def execute_with_retry(
        self, func: Callable[P, Awaitable[T]], service: str = "default", *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``func(*args, **kwargs)``, retrying per ``service``'s :class:`RetryPolicy`.

        Foreign exceptions are translated to :class:`AppError` first; each retry is logged and
        published as :class:`RetryScheduled`.

        Raises:
            AppError: the last error, once it is not retryable, the attempts are used up, or
                the deadline would pass.
        """
        policy = RetryPolicy(self._settings(service))
        state = policy.new_state(self._clock())
        while True:
            try:
                return await func(*args, **kwargs)
            except AppError as exc:
                error = exc
            # Every foreign error is translated and classified, then raised or retried.
            except Exception as exc:  # noqa: BLE001
                error = translate(exc, service)
                error.__cause__ = exc
            decision = policy.decide(state, error, self._clock())
            if decision.delay is None:
                raise error
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs",
                service,
                state.attempt_number,
                describe(error),
                decision.delay,
            )
            if self._bus is not None:
                self._bus.publish(
                    RetryScheduled(
                        service=service, attempt=state.attempt_number, delay=decision.delay, error=describe(error)
                    )
                )
            await self._sleep(decision.delay)
            state.attempt_number += 1


CircuitBreakerManager = BreakerRegistry
FallbackStrategy = FallbackChain
CacheBasedFallback = CacheFallback
HealthCheck = HealthMonitor
