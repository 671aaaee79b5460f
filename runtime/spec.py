"""The spec's names, mapped onto the code: where each public name of ``state-and-errors-spec.md``
lives in Holdfast. A reader of the spec starts here.

Every name below is the production class itself (an alias where Holdfast's own name differs),
so code written against the spec runs with the production behaviour: append-only Redis
history, exact token counts, one probe through a half-open breaker, typed errors, injected
clocks. :data:`SPEC_METHODS` lists the methods the spec gives each name; ``tests/test_spec.py``
checks that every one exists.

=======================  =================================================  ==============================
spec name                Holdfast                                           notes
=======================  =================================================  ==============================
Session, SessionManager  :mod:`runtime.state.sessions`                      a hash per session, sliding TTL
                                                                            capped at max TTL; each process
                                                                            holds one (runtime.host)
ConversationContext      ``ConversationStore`` (:mod:`runtime.state.         append-only list per
                         conversations`)                                    conversation, local journal
RedisStateStore          :mod:`runtime.state.store`                         JSON values, namespaced keys
ContextWindowManager     :mod:`runtime.context.window`                      tiktoken counts, a report
VectorMemoryStore        :mod:`runtime.memory.store`                        LanceDB, user-scoped
ErrorType,               :mod:`runtime.core.errors` (``AppError``)           one rooted error tree
ApplicationError
RetryConfig,             :mod:`runtime.resilience.compat` over              classified retries
RetryManager             ``RetryPolicy``
CircuitBreaker,          :mod:`runtime.resilience.breaker`                  ``CircuitBreakerManager`` is
CircuitState,                                                               ``BreakerRegistry``
CircuitBreakerManager
FallbackStrategy,        :mod:`runtime.resilience.fallback`                 ``FallbackChain``,
CacheBasedFallback,                                                         ``CacheFallback``
DefaultValueFallback
HealthCheck,             :mod:`runtime.resilience.health`                   ``HealthMonitor``
HealthStatus
=======================  =================================================  ==============================

Importing this module imports the state, memory and context layers (redis-py, LanceDB,
tiktoken): it is for readers and integrators, not for a start-up path.
"""

from __future__ import annotations

from runtime.context.window import ContextWindowManager
from runtime.core.errors import AppError, ApplicationError, ErrorType
from runtime.memory.store import VectorMemoryStore
from runtime.resilience.breaker import BreakerRegistry, CircuitBreaker, CircuitState
from runtime.resilience.compat import (
    CacheBasedFallback,
    CircuitBreakerManager,
    FallbackStrategy,
    RetryConfig,
    RetryManager,
)
from runtime.resilience.fallback import CacheFallback, DefaultValueFallback, FallbackChain
from runtime.resilience.health import HealthCheck, HealthMonitor, HealthStatus
from runtime.state.conversations import ConversationContext, ConversationStore
from runtime.state.sessions import Session, SessionManager
from runtime.state.store import RedisStateStore

#: Each spec class and the public methods the spec gives it (``../shared/spec/README.md``).
#: Holdfast's classes have more; these are the ones code written against the spec calls.
SPEC_METHODS: dict[str, tuple[str, ...]] = {
    "Session": (),
    "SessionManager": (
        "create_session",
        "get_session",
        "update_session",
        "extend_session",
        "delete_session",
        "get_user_sessions",
        "cleanup_expired_sessions",
    ),
    "ConversationContext": (
        "initialize_context",
        "add_message",
        "get_context",
        "get_messages_for_prompt",
        "summarize_context",
    ),
    "RedisStateStore": (
        "set",
        "get",
        "delete",
        "exists",
        "hset",
        "hget",
        "hgetall",
        "lpush",
        "rpush",
        "lrange",
        "sadd",
        "smembers",
        "increment",
        "decrement",
        "acquire_lock",
        "release_lock",
        "publish",
        "subscribe",
    ),
    "ContextWindowManager": ("build_prompt",),
    "VectorMemoryStore": ("store_memory", "search_memories", "get_context_memories", "summarize_conversation"),
    "ErrorType": (),
    "ApplicationError": (),
    "RetryConfig": (),
    "RetryManager": ("execute_with_retry",),
    "CircuitState": (),
    "CircuitBreaker": ("call", "get_state"),
    "CircuitBreakerManager": ("get_breaker", "call", "get_all_states"),
    "FallbackStrategy": ("register_fallback", "execute_with_fallback"),
    "CacheBasedFallback": ("with_cache_fallback",),
    "DefaultValueFallback": ("get_with_default",),
    "HealthCheck": ("register_check", "run_checks"),
    "HealthStatus": (),
}

#: Spec names whose Holdfast class has another name: spec name -> the class it is.
SPEC_ALIASES: dict[str, type] = {
    "ConversationContext": ConversationStore,
    "ApplicationError": AppError,
    "CircuitBreakerManager": BreakerRegistry,
    "FallbackStrategy": FallbackChain,
    "CacheBasedFallback": CacheFallback,
    "HealthCheck": HealthMonitor,
}

__all__ = [
    "SPEC_ALIASES",
    "SPEC_METHODS",
    "ApplicationError",
    "CacheBasedFallback",
    "CircuitBreaker",
    "CircuitBreakerManager",
    "CircuitState",
    "ContextWindowManager",
    "ConversationContext",
    "DefaultValueFallback",
    "ErrorType",
    "FallbackStrategy",
    "HealthCheck",
    "HealthStatus",
    "RedisStateStore",
    "RetryConfig",
    "RetryManager",
    "Session",
    "SessionManager",
    "VectorMemoryStore",
]
