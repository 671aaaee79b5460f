"""Fallbacks: what a guarded call returns when the backend failed, and where that came from.

* :class:`Outcome` is a value plus its provenance: ``source`` is ``"primary"`` or the name of
  the fallback that produced it, ``stale`` marks cached data, ``error`` is why the primary failed.
* :class:`CacheFallback` keeps the last good result per key (bounded LRU, TTL on the injected
  clock) and serves it as ``stale=True`` when the primary fails.
* :class:`DefaultValueFallback` is the spec's defaults table.
* :class:`FallbackChain` holds per-service handlers tried in order after the cache.

A handler is ``handler(error, key)`` returning a value (or an awaitable of one); it returns
:data:`NO_FALLBACK` or raises an :class:`AppError` to pass to the next handler.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runtime.core.errors import AppError, InternalError, describe
from runtime.core.events import EventBus, FallbackUsed

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]


class _NoFallback:
    def __repr__(self) -> str:
        return "NO_FALLBACK"


#: Returned by a handler that has nothing to offer for this failure.
NO_FALLBACK: Any = _NoFallback()

FallbackHandler = Callable[[AppError, "str | None"], Any]

PRIMARY = "primary"
CACHE = "cache"


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A result and where it came from."""

    value: T
    source: str = PRIMARY
    stale: bool = False
    error: AppError | None = None

    @property
    def from_fallback(self) -> bool:
        return self.source != PRIMARY

    @property
    def degraded(self) -> bool:
        return self.source != PRIMARY or self.stale


@dataclass(frozen=True)
class Cached:
    value: Any
    age: float


class CacheFallback:
    """Last good result per key, at most ``max_entries`` (least recently used go first)."""

    def __init__(self, ttl: float = 3600.0, max_entries: int = 1024, *, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[Any, float, float]] = OrderedDict()

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        self._entries[key] = (value, self._clock(), self.ttl if ttl is None else ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: Hashable) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored, ttl = entry
        age = self._clock() - stored
        if age > ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return Cached(value, age)

    def __len__(self) -> int:
        return len(self._entries)

    async def with_cache_fallback(
        self,
        func: Callable[..., Awaitable[T]],
        cache_key: Hashable,
        ttl: float | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Outcome[T]:
        """The spec's helper: call ``func``; cache a success; on an AppError serve the cache."""
        try:
            value = await func(*args, **kwargs)
        except AppError as exc:
            hit = self.get(cache_key)
            if hit is None:
                raise
            log.warning("serving cached %r after: %s", cache_key, describe(exc))
            return Outcome(hit.value, CACHE, True, exc)
        self.put(cache_key, value, ttl)
        return Outcome(value)


#: The spec's defaults table.
DEFAULTS: dict[str, Any] = {
    "user_preferences": {"theme": "light", "language": "en", "notifications": True},
    "model_config": {"model": "gpt-3.5-turbo", "temperature": 0.7, "max_tokens": 1000},
}


class DefaultValueFallback:
    """Named default values; every read is a deep copy so callers cannot edit the table."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults: dict[str, Any] = copy.deepcopy(DEFAULTS if defaults is None else defaults)

    def get_with_default(self, key: str, value: Any | None = None) -> Any:
        if value is not None:
            return value
        return copy.deepcopy(self.defaults.get(key, {}))

    def handler(self, name: str) -> FallbackHandler:
        """A fallback handler that answers with the default called ``name``."""
        if name not in self.defaults:
            raise InternalError(f"no default value named {name!r}")

        def default_value(error: AppError, key: str | None) -> Any:
            return copy.deepcopy(self.defaults[name])

        default_value.__name__ = f"default:{name}"
        return default_value


@dataclass(frozen=True)
class _Handler:
    name: str
    fn: Callable[..., Any]
    spec_style: bool  # the spec's register_fallback: called with the primary's arguments


class FallbackChain:
    """Per-service fallback handlers, tried in registration order after the cache."""

    def __init__(self, *, cache: CacheFallback | None = None, bus: EventBus | None = None) -> None:
        self.cache = cache if cache is not None else CacheFallback()
        self._bus = bus
        self._handlers: dict[str, list[_Handler]] = {}

    def register(self, service: str, handler: FallbackHandler, *, name: str | None = None) -> None:
        label = name or getattr(handler, "__name__", None) or "fallback"
        self._handlers.setdefault(service, []).append(_Handler(label, handler, False))

    def unregister(self, service: str, handler: Callable[..., Any]) -> None:
        """Remove ``handler`` from ``service`` (a plugin that failed to load takes its fallbacks back)."""
        kept = [h for h in self._handlers.get(service, []) if h.fn is not handler]
        if kept:
            self._handlers[service] = kept
        else:
            self._handlers.pop(service, None)

    def register_fallback(self, service: str, fallback_func: Callable[..., Any]) -> None:
        """The spec's form: ``fallback_func`` is called with the primary's own arguments."""
        label = getattr(fallback_func, "__name__", None) or "fallback"
        self._handlers.setdefault(service, []).append(_Handler(label, fallback_func, True))

    def has_fallback(self, service: str) -> bool:
        return bool(self._handlers.get(service))

    def remember(self, service: str, key: Hashable, value: Any) -> None:
        self.cache.put((service, key), value)

    async def resolve(
        self,
        service: str,
        error: AppError,
        key: Hashable | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Outcome[Any]:
        """The first fallback that has an answer, as an Outcome; re-raises ``error`` if none."""
        if key is not None:
            hit = self.cache.get((service, key))
            if hit is not None:
                self.announce(service, CACHE, error)
                return Outcome(hit.value, CACHE, True, error)
        for handler in tuple(self._handlers.get(service, ())):
            try:
                value = handler.fn(*args, **(kwargs or {})) if handler.spec_style else handler.fn(error, key)
                if inspect.isawaitable(value):
                    value = await value
            except AppError as exc:
                log.warning("%s: fallback %s failed too: %s", service, handler.name, describe(exc))
                continue
            if value is NO_FALLBACK:
                continue
            self.announce(service, handler.name, error)
            return Outcome(value, handler.name, False, error)
        raise error

    async def execute_with_fallback(
        self, primary_func: Callable[..., Awaitable[T]], service: str, *args: Any, **kwargs: Any
    ) -> Outcome[Any]:
        """The spec's helper: run ``primary_func``; on an AppError try the service's fallbacks."""
        try:
            value = await primary_func(*args, **kwargs)
        except AppError as exc:
            return await self.resolve(service, exc, None, args, kwargs)
        return Outcome(value)

    def announce(self, service: str, name: str, error: AppError) -> None:
        log.warning("%s: using fallback %s after: %s", service, name, describe(error))
        if self._bus is not None:
            self._bus.publish(FallbackUsed(service=service, fallback=name, error=describe(error)))
