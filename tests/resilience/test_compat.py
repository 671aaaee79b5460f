"""The spec's names still work, with production behaviour underneath."""

from __future__ import annotations

import pytest

from runtime.config import ResilienceConfig
from runtime.core.errors import ServiceUnavailableError
from runtime.resilience import (
    BreakerRegistry,
    CacheBasedFallback,
    CircuitBreakerManager,
    DefaultValueFallback,
    FallbackChain,
    FallbackStrategy,
    RetryConfig,
    RetryManager,
)
from tests.support.clock import FakeClock, RecordingSleep


def test_aliases_are_the_production_classes() -> None:
    assert CircuitBreakerManager is BreakerRegistry
    assert FallbackStrategy is FallbackChain


async def test_retry_manager_uses_the_spec_service_names(clock: FakeClock, sleep: RecordingSleep) -> None:
    manager = RetryManager(ResilienceConfig(), clock=clock, sleep=sleep)
    assert manager.get_config("openai") == RetryConfig(5, 2.0, 60.0, 2.0, True)
    assert manager.get_config("mcp").max_attempts == 3 and manager.get_config("mcp").initial_delay == 1.0
    assert manager.get_config("database").initial_delay == 0.5
    calls = 0

    async def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("reset")
        return x

    assert await manager.execute_with_retry(flaky, "database", 7) == 7
    assert calls == 3 and len(sleep.delays) == 2

    async def always_down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ServiceUnavailableError):
        await manager.execute_with_retry(always_down, "database")


async def test_spec_fallback_strategy_calls_the_fallback_with_the_primary_arguments() -> None:
    strategy = FallbackStrategy()

    async def primary(user: str) -> str:
        raise ServiceUnavailableError("down")

    async def fallback(user: str) -> str:
        return f"cached profile of {user}"

    strategy.register_fallback("profiles", fallback)
    out = await strategy.execute_with_fallback(primary, "profiles", "ada")
    assert (out.value, out.source) == ("cached profile of ada", "fallback")
    with pytest.raises(ServiceUnavailableError):
        await strategy.execute_with_fallback(primary, "unregistered", "ada")


async def test_cache_based_fallback_serves_stale_values(clock: FakeClock) -> None:
    cache = CacheBasedFallback(ttl=60, clock=clock)

    async def fetch(v: str) -> str:
        return v

    async def down(v: str) -> str:
        raise ServiceUnavailableError("down")

    assert (await cache.with_cache_fallback(fetch, "k", None, "v1")).value == "v1"
    out = await cache.with_cache_fallback(down, "k", None, "ignored")
    assert (out.value, out.stale) == ("v1", True)


def test_default_value_fallback_returns_copies_of_the_spec_table() -> None:
    defaults = DefaultValueFallback()
    prefs = defaults.get_with_default("user_preferences")
    assert prefs == {"theme": "light", "language": "en", "notifications": True}
    prefs["theme"] = "dark"
    assert defaults.get_with_default("user_preferences")["theme"] == "light"
    assert defaults.get_with_default("model_config", {"model": "x"}) == {"model": "x"}
    assert defaults.get_with_default("unknown") == {}
