"""Resilience layer: retry, circuit breaker, bulkhead, timeout, fallback, Guard, health monitor.

Every outside call goes through ``Resilience(config.resilience, bus).guard(service).call(fn)``;
see :mod:`runtime.resilience.guard` for the composition order and its reasons.
"""

from __future__ import annotations

from runtime.resilience.breaker import BreakerRegistry, BreakerSnapshot, CircuitBreaker, CircuitState
from runtime.resilience.bulkhead import Bulkhead
from runtime.resilience.classify import (
    error_for_status,
    is_outage,
    is_retryable_status,
    parse_retry_after,
    records_failure,
    translate,
)
from runtime.resilience.compat import (
    CacheBasedFallback,
    CircuitBreakerManager,
    FallbackStrategy,
    RetryConfig,
    RetryManager,
)
from runtime.resilience.fallback import (
    NO_FALLBACK,
    CacheFallback,
    DefaultValueFallback,
    FallbackChain,
    Outcome,
)
from runtime.resilience.guard import Guard, Resilience
from runtime.resilience.health import CheckResult, HealthCheck, HealthMonitor, HealthReport, HealthStatus
from runtime.resilience.retry import RetryDecision, RetryPolicy

__all__ = [
    "NO_FALLBACK",
    "BreakerRegistry",
    "BreakerSnapshot",
    "Bulkhead",
    "CacheBasedFallback",
    "CacheFallback",
    "CheckResult",
    "CircuitBreaker",
    "CircuitBreakerManager",
    "CircuitState",
    "DefaultValueFallback",
    "FallbackChain",
    "FallbackStrategy",
    "Guard",
    "HealthCheck",
    "HealthMonitor",
    "HealthReport",
    "HealthStatus",
    "Outcome",
    "Resilience",
    "RetryConfig",
    "RetryDecision",
    "RetryManager",
    "RetryPolicy",
    "error_for_status",
    "is_outage",
    "is_retryable_status",
    "parse_retry_after",
    "records_failure",
    "translate",
]
