"""Distributed state on Redis: key/value store, sessions, conversations, local journal.

Modules: ``client`` (connection pool, error translation, guarded runner), ``codec`` (JSON
only), ``keys`` (key names with cluster hash tags), ``store`` (RedisStateStore), ``locks``,
``sessions`` (SessionManager), ``history`` (conversation scripts), ``conversations``
(ConversationStore with degraded mode), ``journal`` (self-checking records, damaged ones
quarantined), ``cache``, ``export``, ``health``, ``embedded_redis`` (a redis-server launcher),
``shared_redis`` (the data dir's one embedded redis-server, shared by every Holdfast process).

Names are resolved lazily so importing the launcher (as the test fixtures do) does not pull
in redis-py and the resilience layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "make_redis_client": "runtime.state.client",
    "RedisRunner": "runtime.state.client",
    "RedisStateStore": "runtime.state.store",
    "SessionManager": "runtime.state.sessions",
    "Session": "runtime.state.sessions",
    "ConversationStore": "runtime.state.conversations",
    "ConversationContext": "runtime.state.conversations",
    "ReplayReport": "runtime.state.conversations",
    "ConversationInfo": "runtime.state.history",
    "Journal": "runtime.state.journal",
    "DataDirRedis": "runtime.state.shared_redis",
    "RecentCache": "runtime.state.cache",
    "register_redis_health": "runtime.state.health",
    "redis_check": "runtime.state.health",
}

__all__ = [
    "ConversationContext",
    "ConversationInfo",
    "ConversationStore",
    "DataDirRedis",
    "Journal",
    "RecentCache",
    "RedisRunner",
    "RedisStateStore",
    "ReplayReport",
    "Session",
    "SessionManager",
    "make_redis_client",
    "redis_check",
    "register_redis_health",
]

if TYPE_CHECKING:
    from runtime.state.cache import RecentCache
    from runtime.state.client import RedisRunner, make_redis_client
    from runtime.state.conversations import ConversationContext, ConversationStore, ReplayReport
    from runtime.state.health import redis_check, register_redis_health
    from runtime.state.history import ConversationInfo
    from runtime.state.journal import Journal
    from runtime.state.sessions import Session, SessionManager
    from runtime.state.shared_redis import DataDirRedis
    from runtime.state.store import RedisStateStore


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562); AttributeError for others."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.state' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
