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
from typing import Any, Generic, ParamSpec, TypeVar

from runtime.core.errors import AppError, InternalError, describe
from runtime.core.events import EventBus, FallbackUsed

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
Clock = Callable[[], float]


class _NoFallback:
    def __repr__(self) -> str:
        return "NO_FALLBACK"


#: Returned by a handler that has nothing to offer for this failure. Typed ``Any`` on purpose:
#: a sentinel that a handler of any declared return type may return.
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
        """True when a fallback (cache, handler or default) produced the value."""
        return self.source != PRIMARY

    @property
    def degraded(self) -> bool:
        """True when the value is not a fresh primary result (from a fallback, or stale)."""
        return self.source != PRIMARY or self.stale


@dataclass(frozen=True)
class Cached:
    """A cache hit: the stored ``value`` and its ``age`` in seconds on the cache's clock."""

    value: Any
    age: float


class CacheFallback:
    """Last good result per key, at most ``max_entries`` (least recently used go first).

    ``ttl`` is the default lifetime of an entry in seconds on ``clock`` (monotonic seconds).
    This is the spec's ``CacheBasedFallback``.
    """

    def __init__(self, ttl: float = 3600.0, max_entries: int = 1024, *, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[Any, float, float]] = OrderedDict()

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's), evicting the LRU entry if full."""
        self._entries[key] = (value, self._clock(), self.ttl if ttl is None else ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: Hashable) -> Cached | None:
        """The live entry under ``key`` with its age, or None when absent or expired (expired entries are dropped)."""
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
        func: Callable[P, Awaitable[T]],
        cache_key: Hashable,
        ttl: float | None = None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Outcome[T]:
        """The spec's helper: await ``func(*args, **kwargs)``; cache a success; on an AppError serve the cache.

        Returns the fresh value as ``Outcome(value)``, or the cached one with ``source="cache"``,
        ``stale=True`` and the error.

        Raises:
            AppError: ``func`` failed and nothing live is cached under ``cache_key``.
        """
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
    """Named default values; every read is a deep copy so callers cannot edit the table.

    ``defaults`` maps a name to its value; None means the spec's table (:data:`DEFAULTS`).
    """

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults: dict[str, Any] = copy.deepcopy(DEFAULTS if defaults is None else defaults)

    def get_with_default(self, key: str, value: Any | None = None) -> Any:
        """The spec's helper: ``value`` when it is not None, else a copy of the default ``key`` (``{}`` if unknown)."""
        if value is not None:
            return value
        return copy.deepcopy(self.defaults.get(key, {}))

    def handler(self, name: str) -> FallbackHandler:
        """A fallback handler that answers with a copy of the default called ``name``.

        Raises:
            InternalError: there is no default called ``name``.
        """
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
    """Per-service fallback handlers, tried in registration order after the cache.

    This is the spec's ``FallbackStrategy``. Each use of a fallback is logged and published as
    :class:`FallbackUsed` on ``bus``.
    """

    def __init__(self, *, cache: CacheFallback | None = None, bus: EventBus | None = None) -> None:
        self.cache = cache if cache is not None else CacheFallback()
        self._bus = bus
        self._handlers: dict[str, list[_Handler]] = {}

    def register(self, service: str, handler: FallbackHandler, *, name: str | None = None) -> None:
        """Add ``handler(error, key)`` to ``service``'s chain.

        ``name`` (default: the function's ``__name__``) becomes the Outcome's ``source``.
        """
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
        """True when ``service`` has at least one registered handler (the cache does not count)."""
        return bool(self._handlers.get(service))

    def remember(self, service: str, key: Hashable, value: Any) -> None:
        """Cache a good ``value`` of ``service`` under ``key``, for :meth:`resolve` to serve later."""
        self.cache.put((service, key), value)

    async def resolve(
        self,
        service: str,
        error: AppError,
        key: Hashable | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Outcome[Any]:
        """The first fallback that has an answer for ``service``'s ``error``, as an Outcome.

        Tries the cache under ``(service, key)`` when ``key`` is given, then each handler in
        order; spec-style handlers get the primary's ``args``/``kwargs``. A handler that
        returns :data:`NO_FALLBACK` or raises an :class:`AppError` passes to the next.

        Raises:
            AppError: ``error`` itself, when no fallback had an answer.
        """
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
        self, primary_func: Callable[P, Awaitable[T]], service: str, *args: P.args, **kwargs: P.kwargs
    ) -> Outcome[Any]:
        """The spec's helper: await ``primary_func(*args, **kwargs)``; on an AppError, :meth:`resolve`.

        Raises:
            AppError: the primary's error, when no fallback had an answer.
        """
        try:
            value = await primary_func(*args, **kwargs)
        except AppError as exc:
            return await self.resolve(service, exc, None, args, kwargs)
        return Outcome(value)

    def announce(self, service: str, name: str, error: AppError) -> None:
        """Log and publish :class:`FallbackUsed`: ``service`` answered from fallback ``name`` after ``error``."""
        log.warning("%s: using fallback %s after: %s", service, name, describe(error))
        if self._bus is not None:
            self._bus.publish(FallbackUsed(service=service, fallback=name, error=describe(error)))
