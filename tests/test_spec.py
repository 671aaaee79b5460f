"""The spec's public names (``../shared/spec/README.md``) are all found in ``runtime.spec``, each
with the methods the spec gives it, and the aliases are the production classes themselves."""

from __future__ import annotations

import inspect

import pytest

import runtime.spec as spec

#: The names the spec's README lists, as a reader of the spec would look them up.
README_NAMES = (
    "SessionManager",
    "ConversationContext",
    "RedisStateStore",
    "ContextWindowManager",
    "VectorMemoryStore",
    "RetryConfig",
    "RetryManager",
    "CircuitBreaker",
    "CircuitBreakerManager",
    "FallbackStrategy",
    "CacheBasedFallback",
    "DefaultValueFallback",
    "HealthCheck",
    "HealthStatus",
    "ErrorType",
    "ApplicationError",
)


def test_every_spec_name_is_exported() -> None:
    assert set(README_NAMES) <= set(spec.SPEC_METHODS)
    assert set(spec.SPEC_METHODS) <= set(spec.__all__)
    for name in spec.SPEC_METHODS:
        assert inspect.isclass(getattr(spec, name)), name


@pytest.mark.parametrize(("name", "methods"), sorted(spec.SPEC_METHODS.items()))
def test_each_spec_name_has_its_methods(name: str, methods: tuple[str, ...]) -> None:
    cls = getattr(spec, name)
    missing = [m for m in methods if not callable(getattr(cls, m, None))]
    assert not missing, f"{name} lacks {missing}"


def test_aliases_are_the_production_classes() -> None:
    for name, cls in spec.SPEC_ALIASES.items():
        assert getattr(spec, name) is cls, name
    assert spec.ApplicationError is spec.AppError
    assert issubclass(spec.ApplicationError, Exception) and spec.ErrorType.VALIDATION.value


def test_the_spec_names_still_import_from_their_layers() -> None:
    from runtime.resilience import CacheBasedFallback, CircuitBreakerManager, FallbackStrategy, RetryManager
    from runtime.state import ConversationContext, SessionManager

    assert (CacheBasedFallback, CircuitBreakerManager, FallbackStrategy, RetryManager) == (
        spec.CacheBasedFallback,
        spec.CircuitBreakerManager,
        spec.FallbackStrategy,
        spec.RetryManager,
    )
    assert (ConversationContext, SessionManager) == (spec.ConversationContext, spec.SessionManager)
