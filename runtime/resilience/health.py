"""Health monitor: named async checks, run with a timeout, aggregated, polled, observable.

Each check returns a :class:`CheckResult` (or the spec's ``{"status": ..., "details": ...}``
dict). A check that raises or overruns its timeout (spec: 5 s) is UNHEALTHY with the error.
Overall status follows the spec: any unhealthy -> unhealthy, else any degraded -> degraded,
else healthy. Checks run concurrently, so one slow backend does not delay the others.
A background poller re-runs them every ``interval`` seconds and publishes
:class:`HealthChanged` only when a check's (or the overall) status changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from runtime.core.errors import describe
from runtime.core.events import EventBus, HealthChanged
from runtime.resilience.breaker import CircuitBreaker

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]

#: The name used in :class:`HealthChanged` events about the aggregate status.
OVERALL = "overall"
DEFAULT_CHECK_TIMEOUT = 5.0


# Not StrEnum: that would change str() and f-strings from "HealthStatus.HEALTHY" to "healthy".
class HealthStatus(str, Enum):  # noqa: UP042
    """One check's (or the aggregate's) status; the values are the spec's wire names."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


_RANK = {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1, HealthStatus.UNHEALTHY: 2}


def aggregate(statuses: list[HealthStatus]) -> HealthStatus:
    """The spec's rule: the worst status wins; no checks is healthy."""
    return max(statuses, key=_RANK.__getitem__, default=HealthStatus.HEALTHY)


@dataclass(frozen=True)
class CheckResult:
    """What one health check found: status, ``latency_ms`` (milliseconds), structured details, error text."""

    status: HealthStatus
    latency_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec's dict form: ``{"status", "latency_ms", "details", "error"}``."""
        return {
            "status": self.status.value,
            "latency_ms": self.latency_ms,
            "details": dict(self.details),
            "error": self.error,
        }


@dataclass(frozen=True)
class HealthReport:
    """One round of checks: the aggregate ``status`` and each check's result by name."""

    status: HealthStatus
    checks: dict[str, CheckResult]
    #: Wall-clock time, for display only.
    checked_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The spec's dict form: ``{"status", "checked_at", "checks": {name: result dict}}``."""
        return {
            "status": self.status.value,
            "checked_at": self.checked_at,
            "checks": {name: result.to_dict() for name, result in self.checks.items()},
        }


CheckFn = Callable[[], Awaitable["CheckResult | Mapping[str, Any]"]]


@dataclass(frozen=True)
class _Check:
    fn: CheckFn
    timeout: float


def _coerce(value: object) -> CheckResult:
    """Accept a CheckResult, a HealthStatus, or the spec's dict form."""
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, HealthStatus):
        return CheckResult(value)
    if isinstance(value, Mapping):
        details = value.get("details") or {}
        return CheckResult(
            HealthStatus(value.get("status", HealthStatus.HEALTHY.value)),
            value.get("latency_ms"),
            dict(details),
            value.get("error"),
        )
    return CheckResult(HealthStatus.UNHEALTHY, error=f"check returned {type(value).__name__}, not a CheckResult")


class HealthMonitor:
    """Registry of health checks with a background poller. Spec name: ``HealthCheck``.

    ``interval`` is the polling period in seconds; ``clock`` (monotonic seconds) times the
    checks; ``sleep`` waits between rounds; :class:`HealthChanged` events go to ``bus``.
    """

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        interval: float = 15.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bus = bus
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._checks: dict[str, _Check] = {}
        self._last: HealthReport | None = None
        self._task: asyncio.Task[None] | None = None
        #: check name -> (breaker, whether DEGRADED means the backend is down).
        self._breakers: dict[str, tuple[CircuitBreaker, bool]] = {}
        #: check name -> its one-off probe in flight (:meth:`probe_soon`).
        self._probes: dict[str, asyncio.Task[None]] = {}

    def register_check(self, name: str, check_func: CheckFn, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        """Add (or replace) check ``name``: an async function returning a :class:`CheckResult` or the
        spec's dict, given ``timeout`` seconds per run (spec default 5 s)."""
        self._checks[name] = _Check(check_func, timeout)

    def link_breaker(self, name: str, breaker: CircuitBreaker, *, degraded_is_down: bool = False) -> None:
        """Feed every result of check ``name`` to ``breaker`` (:meth:`CircuitBreaker.on_health`):
        while it is open or half-open the check is its probe, so it heals with no user traffic.

        ``degraded_is_down``: a DEGRADED result means the backend did not answer (the LLM check
        reports an unreachable endpoint as DEGRADED); otherwise only UNHEALTHY does. A breaker
        forced open (``/chaos memory off``) turns a healthy result into DEGRADED, so the panel
        never shows green for a backend nobody may call.
        """
        self._breakers[name] = (breaker, degraded_is_down)

    def unregister_check(self, name: str) -> None:
        """Remove check ``name``; unknown names are ignored."""
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        """The registered check names, in registration order."""
        return list(self._checks)

    async def check(self, name: str) -> CheckResult:
        """Run check ``name`` once; a raise, a timeout or an invalid result is an UNHEALTHY result.

        Raises:
            KeyError: no check called ``name``.
            asyncio.CancelledError: the caller was cancelled.
        """
        spec = self._checks[name]
        started = self._clock()
        try:
            async with asyncio.timeout(spec.timeout):
                raw = await spec.fn()
        except TimeoutError:
            return CheckResult(
                HealthStatus.UNHEALTHY,
                (self._clock() - started) * 1000,
                error=f"health check timed out after {spec.timeout:g}s",
            )
        except Exception as exc:  # noqa: BLE001  # a failing check is a result, not a crash
            return CheckResult(HealthStatus.UNHEALTHY, (self._clock() - started) * 1000, error=describe(exc))
        try:
            result = _coerce(raw)
        except ValueError as exc:
            return CheckResult(HealthStatus.UNHEALTHY, error=f"invalid health result: {exc}")
        if result.latency_ms is None:
            result = CheckResult(result.status, (self._clock() - started) * 1000, result.details, result.error)
        return result

    async def run_checks(self) -> HealthReport:
        """Run every check concurrently, record the report, publish what changed."""
        names = list(self._checks)
        results = [
            self._with_breaker(name, r)
            for name, r in zip(names, await asyncio.gather(*map(self.check, names)), strict=True)
        ]
        report = HealthReport(aggregate([r.status for r in results]), dict(zip(names, results, strict=True)))
        self._publish_changes(self._last, report)
        self._last = report
        return report

    def _with_breaker(self, name: str, result: CheckResult) -> CheckResult:
        link = self._breakers.get(name)
        if link is None:
            return result
        breaker, degraded_is_down = link
        down = result.status is HealthStatus.UNHEALTHY or (degraded_is_down and result.status is HealthStatus.DEGRADED)
        breaker.on_health(not down, result.error)
        snap = breaker.snapshot()
        if snap.forced and not down:
            return CheckResult(HealthStatus.DEGRADED, result.latency_ms, result.details, "circuit breaker forced open")
        return result

    def snapshot(self) -> HealthReport | None:
        """The last report, or None before the first run."""
        return self._last

    def _publish_changes(self, old: HealthReport | None, new: HealthReport) -> None:
        for name, result in new.checks.items():
            before = old.checks.get(name) if old else None
            if before is None or before.status is not result.status:
                self._emit(name, before.status if before else None, result)
        if old is None or old.status is not new.status:
            old_status = old.status.value if old else None
            log.log(
                logging.INFO if new.status is HealthStatus.HEALTHY else logging.WARNING,
                "health: %s -> %s",
                old_status,
                new.status.value,
            )
            if self.bus is not None:
                self.bus.publish(HealthChanged(name=OVERALL, old_status=old_status, new_status=new.status.value))

    def _emit(self, name: str, old: HealthStatus | None, result: CheckResult) -> None:
        detail = result.error or ""
        log.info("health %s: %s -> %s %s", name, old.value if old else None, result.status.value, detail)
        if self.bus is not None:
            self.bus.publish(
                HealthChanged(
                    name=name,
                    old_status=old.value if old else None,
                    new_status=result.status.value,
                    detail=detail,
                    latency_ms=result.latency_ms,
                )
            )

    def probe_soon(self, name: str) -> bool:
        """Run check ``name`` once in the background and feed its result to its linked breaker
        (as a polling round would), unless a probe of it is already in flight or no check has
        that name. True when a probe was started.

        For a process without the poller (``holdfast chat``): the first retry of a call to a
        backend asks for a probe, so a backend that refuses connections is *known* down by the
        next attempt and the guard stops retrying it (issue 16's rule) instead of spending every
        retry of its policy. A probe still running at :meth:`stop` is cancelled.
        """
        if name not in self._checks or (name in self._probes and not self._probes[name].done()):
            return False

        async def probe() -> None:
            self._with_breaker(name, await self.check(name))

        self._probes[name] = asyncio.get_running_loop().create_task(probe(), name=f"health-probe-{name}")
        return True

    # ------------------------------------------------------------ background polling

    def start(self) -> None:
        """Poll every ``interval`` seconds in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="health-monitor")

    async def stop(self) -> None:
        """Cancel the poller and any one-off probe and wait for them to end (idempotent); a
        cancellation of ``stop`` itself propagates."""
        probes, self._probes = list(self._probes.values()), {}
        for probe in probes:
            probe.cancel()
        if probes:
            await asyncio.wait(probes)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # stop() itself was cancelled: do not swallow that

    @property
    def running(self) -> bool:
        """True while the background poller task is alive."""
        return self._task is not None and not self._task.done()

    async def _poll(self) -> None:
        while True:
            try:
                await self.run_checks()
            except Exception:  # keep polling: the next round may work
                log.exception("health poll failed")
            await self._sleep(self.interval)


#: The spec's name.
HealthCheck = HealthMonitor
