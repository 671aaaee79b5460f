"""Circuit breaker (CLOSED / OPEN / HALF_OPEN) and the registry of breakers by service name.

Design notes, against the spec's sample:

* Opens on ``failure_threshold`` consecutive failures **or** a failure rate over a sliding
  window (count or time based) once ``minimum_calls`` are in it; calls slower than
  ``slow_call_seconds`` (if set) count as failures.
* Time is the injected monotonic clock, never the wall clock.
* HALF_OPEN admits at most ``half_open_max_probes`` concurrent probes; other callers get
  :class:`CircuitOpenError` at once. A probe that never reports back within ``probe_max_wait``
  loses its slot. ``success_threshold`` probe successes close the breaker; any probe
  failure reopens it, for longer each trip when ``open_backoff`` > 1.
* The breaker is a synchronous state machine: :meth:`acquire` hands out a permit, the caller
  awaits its call **without any lock held**, then reports :meth:`on_success`,
  :meth:`on_failure` or :meth:`on_ignore`. Under asyncio each method runs to completion, so no
  lock is needed at all. A permit remembers the generation it was issued in; a report from an
  older generation (a slow call admitted before a transition) cannot corrupt the new state.
* The closed path is one attribute compare on acquire and a ring-buffer update on report.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, ParamSpec, TypeVar

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.core.errors import CircuitOpenError, ErrorType, describe
from runtime.core.events import BreakerStateChanged, EventBus
from runtime.resilience.classify import records_failure
from runtime.resilience.window import CountWindow, TimeWindow

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
Clock = Callable[[], float]


class BreakerOpen(CircuitOpenError):
    """The :class:`CircuitOpenError` a breaker raises, built in one frame.

    Rejections are the hot path during an outage (every caller, every retry): this sets
    the fields directly instead of going through ``AppError.__init__``, and formats the
    message and details only when someone reads them.
    """

    error_type = ErrorType.CIRCUIT_OPEN
    retryable = False
    status_code = 503
    # Set only by assignment (AppError's fields are writeable); class defaults keep __init__ short.
    _message: str | None = None
    _details: dict[str, Any] | None = None
    _args: tuple[object, ...] | None = None

    def __init__(self, name: str, retry_after: float | None = None, *, last_error: str | None = None) -> None:
        """Args: ``name`` of the breaker (also the service); ``retry_after`` seconds until the next
        probe (None when forced open or when probes are full); ``last_error`` shown in details."""
        self.name = self.service = name
        self.retry_after = retry_after
        self._last_error = last_error

    @property
    def message(self) -> str:
        """The one-line message, naming the seconds until the next probe when known."""
        if self._message is not None:
            return self._message
        wait = self.retry_after
        if wait and wait > 0:
            return f"{self.name} is unavailable (circuit open; next probe in {wait:.1f}s)"
        return f"{self.name} is unavailable (circuit open)"

    @message.setter
    def message(self, value: str) -> None:
        """Replace the built message (``AppError.message`` is writeable)."""
        self._message = value

    @property
    def details(self) -> dict[str, Any]:
        """``{"breaker": name, "last_error": text or None}``, built on read."""
        if self._details is not None:
            return self._details
        return {"breaker": self.name, "last_error": self._last_error}

    @details.setter
    def details(self, value: dict[str, Any]) -> None:
        """Replace the built details (``AppError.details`` is writeable)."""
        self._details = value

    @property
    def args(self) -> tuple[object, ...]:
        """``(message,)``, as ``Exception(message).args`` would be."""
        if self._args is not None:
            return self._args
        return (self.message,)

    @args.setter
    def args(self, value: tuple[object, ...]) -> None:
        """Replace the built args (``BaseException.args`` is writeable)."""
        self._args = tuple(value)

    def __str__(self) -> str:
        return self.message


# Not StrEnum: that would change str() and f-strings from "CircuitState.OPEN" to "open".
class CircuitState(str, Enum):  # noqa: UP042
    """A breaker's state; the values are what snapshots, events and the UI show.

    CLOSED admits every call, OPEN rejects every call until the recovery timeout ends,
    HALF_OPEN admits a bounded number of probe calls (the standard three-state breaker).
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

Listener = Callable[["CircuitBreaker", CircuitState, CircuitState, str], None]


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the UI and ``holdfast health`` show about one breaker.

    ``state`` is a :class:`CircuitState` value; ``failure_count`` the consecutive failures;
    ``failure_rate`` 0.0-1.0 over the sliding window; ``opened_at`` is on the breaker's
    monotonic clock (seconds); ``seconds_until_half_open`` is None unless OPEN (and None when
    forced open); ``trips`` counts openings since the last close.
    """

    name: str
    state: str
    failure_count: int
    failure_rate: float
    calls_in_window: int
    failures_in_window: int
    opened_at: float | None
    seconds_until_half_open: float | None
    last_error: str | None
    trips: int
    probes_in_flight: int
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain JSON-ready dict (times in seconds on the monotonic clock)."""
        return asdict(self)


def _settings(base: ServiceResilience | None, overrides: dict[str, Any]) -> ServiceResilience:
    base = base or ServiceResilience()
    if not overrides:
        return base
    # Validate the overrides with the same rules as the config file.
    return ServiceResilience(**{**base.model_dump(), **overrides})


class CircuitBreaker:
    """One breaker; see the module docstring for the rules.

    Args:
        name: the service the breaker protects (``llm``, ``redis``, ``tool:<name>``).
        settings: thresholds and timeouts; defaults to :class:`ServiceResilience` defaults.
        clock: monotonic seconds; injected so tests drive time.
        bus: where :class:`BreakerStateChanged` events go on every transition.
        overrides: individual :class:`ServiceResilience` fields, validated like the config file.

    Raises:
        pydantic.ValidationError: an override is not a valid setting.
    """

    def __init__(
        self,
        name: str,
        settings: ServiceResilience | None = None,
        *,
        clock: Clock = time.monotonic,
        bus: EventBus | None = None,
        **overrides: Any,
    ) -> None:
        cfg = _settings(settings, overrides)
        self.name = name
        self.settings = cfg
        self._clock = clock
        self._bus = bus
        self._listeners: list[Listener] = []
        self._ids = itertools.count(1)
        self._state = _CLOSED
        self._gen = next(self._ids)
        self._consecutive = 0
        self._window: CountWindow | TimeWindow = (
            CountWindow(cfg.window_size) if cfg.window_type == "count" else TimeWindow(cfg.window_size, clock)
        )
        self._min_calls = min(cfg.minimum_calls, cfg.window_size) if cfg.window_type == "count" else cfg.minimum_calls
        self._full = cfg.window_size if cfg.window_type == "count" else -1
        self._threshold = cfg.failure_threshold
        self._rate = cfg.failure_rate_threshold
        #: Calls slower than this (seconds) count as failures; 0 disables.
        self.slow_call_seconds = cfg.slow_call_seconds
        self._probes: dict[int, float] = {}
        self._half_open_successes = 0
        self._opened_at: float | None = None
        self._open_for = cfg.recovery_timeout
        self._trips = 0
        self._forced = False
        self._last_error: str | None = None
        #: True while the health monitor's last probe of this backend failed (see on_health).
        self.known_down = False

    # ------------------------------------------------------------ admission

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN breaker turns HALF_OPEN on the next :meth:`acquire`)."""
        return self._state

    def acquire(self) -> int:
        """A permit to make one call, or :class:`CircuitOpenError` at once (no I/O).

        Report the call's end with :meth:`on_success`, :meth:`on_failure` or :meth:`on_ignore`,
        passing the permit back.

        Raises:
            CircuitOpenError: OPEN before the recovery timeout (``retry_after`` = seconds left),
                forced open (``retry_after`` None), or HALF_OPEN with every probe slot taken.
        """
        if self._state is _CLOSED:
            return self._gen
        return self._acquire_slow()

    def _acquire_slow(self) -> int:
        now = self._clock()
        if self._state is _OPEN:
            assert self._opened_at is not None
            remaining = self._opened_at + self._open_for - now
            if self._forced or remaining > 0:
                raise BreakerOpen(self.name, None if self._forced else remaining, last_error=self._last_error)
            self._transition(_HALF_OPEN, "recovery timeout elapsed")
        probes = self._probes
        if probes:
            max_wait = self.settings.probe_max_wait
            for token, started in list(probes.items()):
                if now - started >= max_wait:
                    # A probe that never reported back must not keep the breaker stuck.
                    del probes[token]
                    log.warning("breaker %s: probe gave no answer in %.1fs, admitting another", self.name, max_wait)
        if len(probes) >= self.settings.half_open_max_probes:
            raise BreakerOpen(self.name, None, last_error=self._last_error)
        token = next(self._ids)
        probes[token] = now
        return token

    def open_for(self) -> float:
        """Seconds this breaker will keep rejecting calls (0 unless OPEN; inf when forced)."""
        if self._state is not _OPEN or self._opened_at is None:
            return 0.0
        if self._forced:
            return float("inf")
        return max(0.0, self._opened_at + self._open_for - self._clock())

    def rejection(self) -> CircuitOpenError:
        """The error a caller gets while the breaker rejects calls."""
        wait = self.open_for()
        return BreakerOpen(self.name, None if wait == float("inf") else wait, last_error=self._last_error)

    # ------------------------------------------------------------ reports

    def on_success(self, permit: int, duration: float = 0.0) -> None:
        """Report a successful call; ``duration`` (seconds) at or over ``slow_call_seconds`` counts as a failure.

        In HALF_OPEN, ``success_threshold`` probe successes close the breaker. A permit from an
        earlier generation (issued before a transition) is ignored.
        """
        if self.slow_call_seconds and duration >= self.slow_call_seconds:
            self.on_failure(permit, f"slow call ({duration:.2f}s >= {self.slow_call_seconds:.2f}s)")
            return
        if permit == self._gen:
            self._consecutive = 0
            window = self._window
            # A full count window with no failures is unchanged by one more success.
            if window.failures or window.calls != self._full:
                window.record(False)
                if window.failures:
                    # The call that reaches minimum_calls may be a success.
                    self._check_rate()
        elif self._state is _HALF_OPEN and self._probes.pop(permit, None) is not None:
            self._half_open_successes += 1
            if self._half_open_successes >= self.settings.success_threshold:
                self._transition(_CLOSED, f"{self._half_open_successes} probe(s) succeeded")

    def on_failure(self, permit: int, error: BaseException | str | None = None) -> None:
        """Report a failed call; ``error`` (an exception or text) becomes the shown last error.

        May trip the breaker OPEN: on ``failure_threshold`` consecutive failures, on a window
        failure rate at or over ``failure_rate_threshold``, or on any failed HALF_OPEN probe.
        """
        if error is not None:
            self._last_error = error if isinstance(error, str) else describe(error)
        if permit == self._gen:
            self._consecutive += 1
            window = self._window
            window.record(True)
            if self._consecutive >= self._threshold:
                self._trip(f"{self._consecutive} consecutive failures")
                return
            self._check_rate()
        elif self._state is _HALF_OPEN and self._probes.pop(permit, None) is not None:
            self._trip("probe failed")

    def on_health(self, healthy: bool, error: str | None = None) -> None:
        """A health monitor's probe of this breaker's backend (issue 16: heal without traffic).

        While OPEN past the recovery timeout, or HALF_OPEN, the probe counts as a half-open probe:
        ``success_threshold`` healthy probes close the breaker, an unhealthy one reopens it. So
        a breaker closes within ``recovery_timeout`` + one probe interval of the backend's return
        with no user call. While CLOSED (or forced open) it only records :attr:`known_down`,
        which lets a guard fail a refused call at once instead of retrying it.
        """
        self.known_down = not healthy
        if not healthy and error:
            self._last_error = error
        if self._state is _CLOSED or self._forced:
            return
        if self._state is _OPEN:
            assert self._opened_at is not None
            if self._opened_at + self._open_for - self._clock() > 0:
                return
            self._transition(_HALF_OPEN, "recovery timeout elapsed (health probe)")
        if not healthy:
            self._trip("health probe failed")
            return
        self._half_open_successes += 1
        if self._half_open_successes >= self.settings.success_threshold:
            self._transition(_CLOSED, f"{self._half_open_successes} health probe(s) succeeded")

    def _check_rate(self) -> None:
        calls, failures = self._window.totals()
        if calls >= self._min_calls and failures >= self._rate * calls:
            self._trip(f"failure rate {failures}/{calls} >= {self._rate:.0%}")

    def on_ignore(self, permit: int) -> None:
        """The call ended in a way that says nothing about the backend (cancelled, caller error)."""
        if self._state is _HALF_OPEN:
            self._probes.pop(permit, None)

    def record(self, permit: int, exc: BaseException) -> None:
        """Report ``exc`` as a failure or ignore it, per :func:`records_failure`."""
        if records_failure(exc):
            self.on_failure(permit, exc)
        else:
            self.on_ignore(permit)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """The spec's ``breaker.call(func, *args)``: admit, await ``fn(*args, **kwargs)``, report.

        No translation and no retry: exceptions from ``fn`` propagate as they are.

        Raises:
            CircuitOpenError: the breaker rejected the call (``fn`` was not called).
        """
        permit = self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.record(permit, exc)
            raise
        self.on_success(permit)
        return result

    # ------------------------------------------------------------ transitions

    def _trip(self, reason: str) -> None:
        self._trips += 1
        cfg = self.settings
        self._open_for = min(
            cfg.recovery_timeout * cfg.open_backoff ** (self._trips - 1),
            max(cfg.max_recovery_timeout, cfg.recovery_timeout),
        )
        self._opened_at = self._clock()
        self._transition(_OPEN, reason)

    def _transition(self, new: CircuitState, reason: str) -> None:
        old = self._state
        self._state = new
        self._gen = next(self._ids)
        self._probes.clear()
        self._half_open_successes = 0
        if new is _CLOSED:
            self._consecutive = 0
            self._window.reset()
            self._trips = 0
            self._opened_at = None
            self._forced = False
        if old is new:
            return
        level = logging.WARNING if new is _OPEN else logging.INFO
        log.log(level, "breaker %s: %s -> %s (%s)", self.name, old.value, new.value, reason)
        for listener in tuple(self._listeners):
            try:
                listener(self, old, new, reason)
            except Exception:  # a broken listener must not break the breaker
                log.exception("breaker %s: listener failed", self.name)
        if self._bus is not None:
            self._bus.publish(
                BreakerStateChanged(name=self.name, old_state=old.value, new_state=new.value, reason=reason)
            )

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(breaker, old, new, reason)`` on every transition; returns a remover.

        A listener that raises is logged and skipped, never breaking the breaker.
        """
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def force_open(self, reason: str = "forced open") -> None:
        """Reject every call until :meth:`force_closed` or :meth:`reset`."""
        self._forced = True
        self._opened_at = self._clock()
        self._transition(_OPEN, reason)

    def force_closed(self, reason: str = "forced closed") -> None:
        """Close now with an empty window; the last error is kept for display."""
        self._transition(_CLOSED, reason)

    def trip(self, reason: str) -> None:
        """Open now, as reaching the failure threshold would: the usual recovery timeout, then a
        half-open probe (a peer process saw the backend fail: issue 19, ``runtime.state.breaker_sync``).
        Clears a forced open; a no-op while already OPEN and not forced."""
        if self._state is _OPEN and not self._forced:
            return
        self._forced = False
        self._trip(reason)

    def reset(self) -> None:
        """Back to a fresh CLOSED breaker."""
        self._transition(_CLOSED, "reset")
        self._last_error = None

    # ------------------------------------------------------------ observation

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's state and counters now, for the UI and ``holdfast health``."""
        calls, failures = self._window.totals()
        until: float | None = None
        if self._state is _OPEN and self._opened_at is not None:
            until = None if self._forced else max(0.0, self._opened_at + self._open_for - self._clock())
        return BreakerSnapshot(
            name=self.name,
            state=self._state.value,
            failure_count=self._consecutive,
            failure_rate=failures / calls if calls else 0.0,
            calls_in_window=calls,
            failures_in_window=failures,
            opened_at=self._opened_at,
            seconds_until_half_open=until,
            last_error=self._last_error,
            trips=self._trips,
            probes_in_flight=len(self._probes),
            forced=self._forced,
        )

    def get_state(self) -> dict[str, Any]:
        """The spec's ``get_state()``: :meth:`snapshot` as a dict."""
        return self.snapshot().to_dict()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"


class BreakerRegistry:
    """Get-or-create breakers by service name, with settings from :class:`ResilienceConfig`."""

    def __init__(
        self, config: ResilienceConfig | None = None, *, clock: Clock = time.monotonic, bus: EventBus | None = None
    ) -> None:
        self._config = config or ResilienceConfig()
        self._clock = clock
        self._bus = bus
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, **overrides: Any) -> CircuitBreaker:
        """The breaker for service ``name``, created on first use with that service's settings.

        ``overrides`` (:class:`ServiceResilience` fields) apply only when the breaker is created.
        The spec calls this ``get_breaker``.
        """
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, self._config.for_service(name), clock=self._clock, bus=self._bus, **overrides
            )
            self._breakers[name] = breaker
        return breaker

    get_breaker = get

    async def call(self, name: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`CircuitBreaker.call` on the breaker named ``name``; raises :class:`CircuitOpenError` when open."""
        return await self.get(name).call(fn, *args, **kwargs)

    def snapshots(self) -> list[BreakerSnapshot]:
        """One snapshot per breaker, in creation order."""
        return [b.snapshot() for b in self._breakers.values()]

    def get_all_states(self) -> dict[str, dict[str, Any]]:
        """The spec's ``get_all_states()``: breaker name -> :meth:`CircuitBreaker.get_state`."""
        return {name: b.get_state() for name, b in self._breakers.items()}

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(tuple(self._breakers.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)
