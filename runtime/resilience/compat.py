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
from typing import Any, TypeVar

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

#: The spec's service names and the config sections they mean.
SPEC_SERVICE_NAMES = {"openai": "llm", "mcp": "tools", "database": "redis"}


@dataclass(frozen=True)
class RetryConfig:
    """The spec's retry settings (which errors retry is decided by ``AppError.retryable``)."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    exponential_base: float = 2.0
    jitter: bool = True

    @classmethod
    def from_settings(cls, s: ServiceResilience) -> RetryConfig:
        return cls(s.max_attempts, s.initial_delay, s.max_delay, s.multiplier, s.jitter)

    def to_settings(self, base: ServiceResilience | None = None) -> ServiceResilience:
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
        return RetryConfig.from_settings(self._settings(service))

    async def execute_with_retry(
        self, func: Callable[..., Awaitable[T]], service: str = "default", *args: Any, **kwargs: Any
    ) -> T:
        policy = RetryPolicy(self._settings(service))
        state = policy.new_state(self._clock())
        while True:
            try:
                return await func(*args, **kwargs)
            except AppError as exc:
                error = exc
            except Exception as exc:
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
