"""Guard: the one composition every outside call goes through, and the Resilience factory.

Order, outermost first::

    fallback( retry( breaker( bulkhead( timeout( call ) ) ) ) )

* **fallback** (only in :meth:`Guard.call_with_fallback`) sees the final error after retries.
* **retry** wraps the breaker, so every attempt asks the breaker first: once the breaker
  opens, the next attempt gets :class:`CircuitOpenError`, which is not retryable, and the
  retries stop at once with no I/O.
* **breaker** outside the bulkhead: a rejected call never takes a slot, and a full bulkhead
  (our own limit, not the backend's fault) releases the permit without counting.
* **timeout** innermost, so a timed-out attempt is a failure the breaker counts and the
  retry policy may retry.

The success path is: breaker permit (one compare), bulkhead slot (one compare), a ticket in
the guard's :class:`DeadlineWatch`, the call itself, the reports. No task is created, no
tenacity code runs, no timer is scheduled per call. Retry machinery starts only after a
first retryable failure.

Foreign exceptions are translated here, by :func:`runtime.resilience.classify.translate`;
``asyncio.CancelledError`` always propagates untouched and never counts as a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

from tenacity import RetryCallState

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.core.errors import AppError, ErrorType, OperationTimeoutError, describe
from runtime.core.events import EventBus, RetryScheduled
from runtime.resilience.breaker import BreakerRegistry, CircuitBreaker
from runtime.resilience.bulkhead import Bulkhead
from runtime.resilience.classify import translate
from runtime.resilience.deadline import DeadlineWatch
from runtime.resilience.fallback import CacheFallback, FallbackChain, Outcome
from runtime.resilience.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]

_MISSING: Any = object()

#: The ``source`` of an Outcome built from ``call_with_fallback(default=...)``.
DEFAULT_SOURCE = "default"


class Guard:
    """Retries, breaker, bulkhead and timeout for one named service. Get one from :class:`Resilience`.

    ``settings.timeout`` is the per-attempt timeout and ``settings.deadline`` the total budget
    of one call with its retries, both in seconds on ``clock``; ``sleep`` waits between
    attempts (injected so tests do not sleep).
    """

    def __init__(
        self,
        service: str,
        settings: ServiceResilience,
        *,
        breaker: CircuitBreaker,
        fallbacks: FallbackChain,
        bus: EventBus | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.service = service
        self.settings = settings
        self.breaker = breaker
        self.bulkhead = Bulkhead(service, settings.max_concurrent, settings.bulkhead_wait)
        self.policy = RetryPolicy(settings)
        self.timeout = settings.timeout
        self._watch = DeadlineWatch(settings.timeout)
        # A deadline shorter than one attempt's timeout bounds the first attempt too.
        self._first_limit: float | None = settings.deadline if settings.deadline < settings.timeout else None
        self._fallbacks = fallbacks
        self._bus = bus
        self._clock = clock
        self._sleep = sleep

    # ------------------------------------------------------------ coroutines

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` under the full policy; raises an :class:`AppError` on failure.

        ``fn`` is called once per attempt, so it must build a fresh awaitable each time
        (``lambda: client.get(key)``, not a coroutine object). Returns what ``fn()`` returned.

        Raises:
            CircuitOpenError: the breaker rejected the call (or would reject the next retry).
            OperationTimeoutError: an attempt overran ``settings.timeout`` seconds.
            BulkheadFullError: no slot freed up within ``settings.bulkhead_wait`` seconds.
            AppError: the last attempt's error, foreign exceptions translated by
                :func:`~runtime.resilience.classify.translate`.
            asyncio.CancelledError: the caller was cancelled (never counted as a failure).
        """
        start = self._clock()
        # Admission happens here, not in _attempt, so an open breaker's rejection leaves
        # through one frame: rejections are the hot path of an outage.
        permit = self.breaker.acquire()
        try:
            return await self._attempt(fn, self._first_limit, permit)
        except AppError as exc:
            if not exc.retryable or self.policy.max_attempts <= 1 or self._known_down(exc):
                raise
            first = exc
        return await self._retry(fn, first, start)

    async def _attempt(self, fn: Callable[[], Awaitable[T]], time_left: float | None, permit: int) -> T:
        """One admitted attempt: bulkhead, timeout, call, report to the breaker.

        ``time_left`` is what remains of the call's total budget (seconds) when that is less
        than the per-attempt timeout, else None for the guard's shared :class:`DeadlineWatch`.
        It is applied here, inside the bulkhead, rather than by the caller wrapping this in
        ``asyncio.timeout``: time spent waiting for a slot is not the backend's, and the expiry
        must reach the breaker as an :class:`OperationTimeoutError`.
        """
        breaker = self.breaker
        bulkhead = self.bulkhead
        if not bulkhead.try_acquire():
            try:
                await bulkhead.acquire()
            except BaseException:
                breaker.on_ignore(permit)
                raise
        slow = breaker.slow_call_seconds
        started = self._clock() if slow else 0.0
        try:
            if time_left is None:
                watch = self._watch
                ticket = watch.start()
                try:
                    result = await fn()
                except BaseException as exc:
                    if watch.finish(ticket):
                        raise self._timed_out(self.timeout) from exc
                    raise
                watch.finish(ticket)
            else:
                try:
                    async with asyncio.timeout(time_left):
                        result = await fn()
                except TimeoutError as exc:
                    raise self._timed_out(time_left) from exc
        except asyncio.CancelledError:
            breaker.on_ignore(permit)
            raise
        except AppError as exc:
            breaker.record(permit, exc)
            raise
        except Exception as exc:
            error = translate(exc, self.service)
            breaker.record(permit, error)
            raise error from exc
        except BaseException:
            # KeyboardInterrupt, SystemExit, GeneratorExit: not the backend's fault.
            breaker.on_ignore(permit)
            raise
        finally:
            bulkhead.release()
        breaker.on_success(permit, self._clock() - started if slow else 0.0)
        return result

    def _next_delay(self, state: RetryCallState, error: AppError) -> float:
        """Seconds to wait before the next attempt; raises when there will be none."""
        decision = self.policy.decide(state, error, self._clock())
        if decision.delay is None:
            self._give_up(state.attempt_number, error, decision.reason)
            raise error
        if self.breaker.open_for() > decision.delay:
            # The breaker would reject the next attempt anyway: fail now, not after a sleep.
            self._give_up(state.attempt_number, error, "circuit open")
            raise self.breaker.rejection() from error
        self._announce_retry(state.attempt_number, decision.delay, error)
        return decision.delay

    async def _retry(self, fn: Callable[[], Awaitable[T]], error: AppError, start: float) -> T:
        policy = self.policy
        state = policy.new_state(start)
        while True:
            await self._sleep(self._next_delay(state, error))
            state.attempt_number += 1
            remaining = policy.remaining(state, self._clock())
            # The last attempts get only what is left of the call's total budget.
            time_left = None if remaining >= self.timeout else max(remaining, 0.001)
            try:
                return await self._attempt(fn, time_left, self.breaker.acquire())
            except AppError as exc:
                if not exc.retryable or self._known_down(exc):
                    raise
                error = exc

    # ------------------------------------------------------------ streams

    async def stream(self, fn: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Iterate ``fn()`` as one guarded call.

        Yields ``fn()``'s items. The timeout (``settings.timeout`` seconds) applies to the wait
        for each item. ``settings.deadline`` (seconds) bounds the logical call until its first
        item, the part where attempts are made, retries and waits included: every attempt's
        wait is cut to the time left, so a stream that never gets going (a hung server, one
        that sends only SSE keep-alive comments) ends by the deadline. Only items count as
        progress: bytes that carry none never extend a wait. Once items flow, each must come
        within the timeout, and the call may outlast the deadline: a long answer that is still
        arriving is not cut (its length is bounded by the request's ``max_tokens``).

        A stream that fails before its first item is retried like a call; once an item was
        yielded, a failure is raised as is (the consumer already acted on part of it).
        Stopping early (``aclose``/``break``) counts as neither success nor failure.

        Raises:
            AppError: as :meth:`call`, including :class:`OperationTimeoutError` when one item
                took longer than the timeout or the deadline passed.
        """
        policy = self.policy
        state = None
        clock = self._clock
        timeout = self.timeout
        call_started = clock()
        deadline = call_started + policy.deadline
        while True:
            breaker = self.breaker
            permit = breaker.acquire()
            bulkhead = self.bulkhead
            if not bulkhead.try_acquire():
                try:
                    await bulkhead.acquire()
                except BaseException:
                    breaker.on_ignore(permit)
                    raise
            yielded = False
            started = self._clock()
            error: AppError
            try:
                iterator = fn().__aiter__()
                try:
                    while True:
                        wait = timeout
                        if not yielded:
                            left = deadline - clock()
                            if left <= 0:
                                raise self._deadline_passed(policy.deadline)
                            if left < wait:
                                wait = left
                        try:
                            async with asyncio.timeout(wait):
                                item = await iterator.__anext__()
                        except StopAsyncIteration:
                            break
                        except TimeoutError as exc:
                            if wait < timeout:
                                raise self._deadline_passed(policy.deadline) from exc
                            raise self._timed_out(timeout) from exc
                        yielded = True
                        yield item
                finally:
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        await aclose()
            except (asyncio.CancelledError, GeneratorExit):
                breaker.on_ignore(permit)
                raise
            except AppError as exc:
                breaker.record(permit, exc)
                error = exc
            # Every foreign error is translated, counted, then raised or retried.
            except Exception as exc:  # noqa: BLE001
                error = translate(exc, self.service)
                error.__cause__ = exc
                breaker.record(permit, error)
            except BaseException:
                breaker.on_ignore(permit)
                raise
            else:
                breaker.on_success(permit, self._clock() - started)
                return
            finally:
                bulkhead.release()
            if yielded or not error.retryable or self._known_down(error):
                raise error
            if state is None:
                state = policy.new_state(call_started)
            await self._sleep(self._next_delay(state, error))
            state.attempt_number += 1

    # ------------------------------------------------------------ fallback

    async def call_with_fallback(
        self, fn: Callable[[], Awaitable[T]], key: Hashable | None = None, *, default: Any = _MISSING
    ) -> Outcome[T]:
        """:meth:`call`, then on failure the service's fallbacks, as an :class:`Outcome`.

        With ``key``, a success is remembered in the cache and a failure first looks for the
        last good value under that key (``source="cache"``, ``stale=True``). Then registered
        handlers run in order; then ``default`` if given (``source="default"``); otherwise the
        error is raised.

        Raises:
            AppError: the call failed and no fallback (nor ``default``) had an answer.
        """
        try:
            value = await self.call(fn)
        except AppError as exc:
            error = exc
        else:
            if key is not None:
                self._fallbacks.remember(self.service, key, value)
            return Outcome(value)
        try:
            return await self._fallbacks.resolve(self.service, error, key)
        except AppError:
            if default is _MISSING:
                raise
        self._fallbacks.announce(self.service, DEFAULT_SOURCE, error)
        return Outcome(default, DEFAULT_SOURCE, False, error)

    def _known_down(self, error: AppError) -> bool:
        """True when retrying ``error`` would only wait: the backend refused or dropped the
        connection and the health monitor already found it down (issue 16: fail the turn to its
        degraded reply in under 2 s, not after ~20 s of retries)."""
        return self.breaker.known_down and error.error_type is ErrorType.EXTERNAL_SERVICE

    # ------------------------------------------------------------ reporting

    def _timed_out(self, seconds: float) -> OperationTimeoutError:
        return OperationTimeoutError(
            f"{self.service} did not answer within {seconds:g}s", service=self.service, details={"timeout": seconds}
        )

    def _deadline_passed(self, deadline: float) -> OperationTimeoutError:
        return OperationTimeoutError(
            f"{self.service} gave no complete reply within its deadline of {deadline:g}s",
            service=self.service,
            details={"deadline": deadline},
            retryable=False,
        )

    def _announce_retry(self, attempt: int, delay: float, error: AppError) -> None:
        text = describe(error)
        log.warning("%s: attempt %d failed (%s); retrying in %.2fs", self.service, attempt, text, delay)
        if self._bus is not None:
            self._bus.publish(
                RetryScheduled(
                    service=self.service,
                    attempt=attempt,
                    delay=delay,
                    error=text,
                    max_attempts=self.policy.max_attempts,
                )
            )

    def _give_up(self, attempts: int, error: AppError, reason: str) -> None:
        log.warning("%s: giving up after %d attempt(s) (%s): %s", self.service, attempts, reason, describe(error))

    def snapshot(self) -> dict[str, Any]:
        """Breaker snapshot (:meth:`BreakerSnapshot.to_dict`) plus bulkhead ``in_flight`` and ``waiting`` counts."""
        data = self.breaker.snapshot().to_dict()
        data["in_flight"] = self.bulkhead.in_use
        data["waiting"] = self.bulkhead.waiting
        return data

    def __repr__(self) -> str:
        return f"Guard({self.service!r}, breaker={self.breaker.state.value})"


class Resilience:
    """Builds and keeps one :class:`Guard` per service, sharing breakers, fallbacks and the bus.

    ``config`` gives each service its settings (:meth:`ResilienceConfig.for_service`); ``clock``
    (monotonic seconds) and ``sleep`` are injected into every breaker and guard; ``cache`` is
    the last-good-value cache behind every guard's ``call_with_fallback(key=...)``.
    """

    def __init__(
        self,
        config: ResilienceConfig | None = None,
        bus: EventBus | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        cache: CacheFallback | None = None,
    ) -> None:
        self.config = config or ResilienceConfig()
        self.bus = bus
        self.clock = clock
        self.sleep = sleep
        self.breakers = BreakerRegistry(self.config, clock=clock, bus=bus)
        self.fallbacks = FallbackChain(cache=cache or CacheFallback(clock=clock), bus=bus)
        self._guards: dict[str, Guard] = {}

    def guard(self, service: str) -> Guard:
        """Get or create the guard of ``service`` (``llm``, ``redis``, ``memory``, ``embeddings``, ``tool:<name>``)."""
        guard = self._guards.get(service)
        if guard is None:
            guard = Guard(
                service,
                self.config.for_service(service),
                breaker=self.breakers.get(service),
                fallbacks=self.fallbacks,
                bus=self.bus,
                clock=self.clock,
                sleep=self.sleep,
            )
            self._guards[service] = guard
        return guard

    @property
    def guards(self) -> dict[str, Guard]:
        """The guards built so far, by service name (a copy)."""
        return dict(self._guards)

    def snapshots(self) -> list[dict[str, Any]]:
        """Every breaker's snapshot as a plain dict (for ``holdfast health`` and the UI)."""
        return [snap.to_dict() for snap in self.breakers.snapshots()]
