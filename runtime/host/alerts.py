"""Alerts, for every face: a breaker opening, the journal growing, each recovery, and whatever a
face adds (``holdfast serve``: its 5xx answers); to webhooks and onto the event bus.

The :class:`~runtime.host.runtime.Runtime` owns one :class:`Alerts`, wired to its event bus when
it starts. An alert has a ``key`` (its kind and what it is about, e.g. ``breaker_open:llm``); the
same key fires at most once per ``[alerts].dedup_window`` seconds in a process, and a recovery
(``recovered:breaker_open:llm``) fires only for a key that alerted, then clears it so the next
failure alerts again. Every alert that fires is published as an
:class:`~runtime.core.events.AlertRaised` event: the TUI shows it as a notice, ``holdfast serve``
counts it in ``/metrics``.

Webhooks (``[alerts].webhooks`` get the plain JSON body of :meth:`Alert.to_dict`,
``slack_webhooks`` Slack's incoming-webhook body ``{"text": ...}``) are told once per key and
window across every process on the same Redis: before delivering, a process claims the key in
Redis (``SET NX PX`` on ``<prefix>:{fleet}:alert:<key>``, :class:`RedisAlertClaims`); the
processes that lose the claim (the other workers, a TUI beside the server, all of whose breakers
open together through breaker sync) show the alert but do not send it again. With Redis out the
claim is skipped and the alert is sent (a duplicate is better than a lost alert).

Delivery runs in background tasks, each POST through ``Guard("webhook:<host>")`` (retries,
breaker) and bounded by ``[alerts].timeout`` seconds: a dead or slow webhook never slows a turn
or a request, and its failures are only logged. Breakers of webhooks never alert (an alert
about the alert channel could only go down that channel). The clock is injected (monotonic
seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from runtime.config import AlertsConfig
from runtime.core.errors import (
    AppError,
    ExternalServiceError,
    OperationTimeoutError,
    ServiceUnavailableError,
    ValidationError,
    describe,
)
from runtime.core.events import AlertRaised, BreakerStateChanged, Event, EventBus

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How bad an alert is: ``critical`` (a service is down), ``warning``, ``info`` (a recovery).
Severity = Literal["critical", "warning", "info"]
#: Breakers whose name starts with this are the webhooks' own: they never alert.
WEBHOOK_PREFIX = "webhook:"


class GuardLike(Protocol):
    """What alerts need of :class:`runtime.resilience.Guard`: ``await guard.call(fn)``."""

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` with retries and a breaker; raises AppErrors only."""
        ...


class AlertClaims(Protocol):
    """Fleet-wide dedup of webhook deliveries (see :class:`RedisAlertClaims`)."""

    async def claim(self, key: str, seconds: float) -> bool:
        """True when this process is the first to claim ``key`` within ``seconds``; AppError
        when the shared store cannot be reached."""
        ...

    async def release(self, key: str) -> None:
        """Forget the claim on ``key`` (its recovery: the next failure alerts again)."""
        ...


@dataclass(frozen=True)
class Alert:
    """One alert: ``kind`` (``server_error``, ``breaker_open``, ``journal_backlog``, ``recovered``),
    ``key`` (its dedup key), ``severity``, a one-line ``message``, ``service`` when known,
    ``details`` (JSON-ready), and the wall-clock time ``at`` (epoch seconds)."""

    kind: str
    key: str
    severity: Severity
    message: str
    service: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON webhook body (plus ``host``: which machine sent it)."""
        return {
            "kind": self.kind,
            "key": self.key,
            "severity": self.severity,
            "message": self.message,
            "service": self.service,
            "details": self.details,
            "at": self.at,
            "host": socket.gethostname(),
            "source": "holdfast",
        }

    def slack(self) -> dict[str, str]:
        """Slack's incoming-webhook body (``{"text": ...}``, Slack's documented minimum)."""
        icon = {"critical": ":red_circle:", "warning": ":warning:"}.get(self.severity, ":large_green_circle:")
        return {"text": f"{icon} Holdfast [{self.severity}] {self.message}"}


class RedisAlertClaims:
    """:class:`AlertClaims` on Redis: ``SET <prefix>:{fleet}:alert:<key> NX PX`` through the
    runner's guard. ``runner`` is a :class:`runtime.state.client.RedisRunner`."""

    def __init__(self, runner: RedisRunnerLike, key_prefix: str = "holdfast") -> None:
        self._runner = runner
        self._prefix = key_prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{{fleet}}:alert:{key}"

    async def claim(self, key: str, seconds: float) -> bool:
        """True when no process claimed ``key`` in the last ``seconds`` (and now this one has)."""
        k, ms = self._key(key), max(1, int(seconds * 1000))
        return bool(await self._runner.run(lambda r: r.set(k, "1", nx=True, px=ms), "alert claim"))

    async def release(self, key: str) -> None:
        """Delete the claim on ``key``."""
        k = self._key(key)
        await self._runner.run(lambda r: r.delete(k), "alert release")


class RedisRunnerLike(Protocol):
    """What :class:`RedisAlertClaims` needs of :class:`runtime.state.client.RedisRunner`."""

    async def run(self, op: Callable[[Any], Awaitable[T]], operation: str = "") -> T:
        """Run ``fn(redis)`` through the Redis guard; raises AppErrors only."""
        ...


class Alerts:
    """Fires deduplicated alerts (see the module doc).

    Args:
        config: the ``[alerts]`` section.
        guard: the Guard of a service name (``Resilience.guard``), used per webhook host.
        bus: where :class:`AlertRaised` events go, and (after :meth:`start`) where breaker
            transitions come from.
        clock: monotonic seconds, for the dedup window.
        client: the HTTP client (default: one of its own, closed by :meth:`aclose`).
    """

    def __init__(
        self,
        config: AlertsConfig,
        guard: Callable[[str], GuardLike],
        *,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self._guard = guard
        self._bus = bus
        self._clock = clock
        self._client = client
        self._own_client = client is None
        self._last: dict[str, float] = {}
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claims: AlertClaims | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._unsubscribe: Callable[[], None] | None = None
        #: Alerts fired (after dedup), newest last, at most 100; for the UI and tests.
        self.sent: list[Alert] = []

    @property
    def targets(self) -> int:
        """How many webhooks are configured."""
        return len(self.config.webhooks) + len(self.config.slack_webhooks)

    # ------------------------------------------------------------ lifecycle

    def start(self, pending_writes: Callable[[], int] | None = None, *, claims: AlertClaims | None = None) -> None:
        """Listen to the bus's breaker transitions and, every ``[alerts].check_interval``
        seconds, check ``pending_writes()`` (journaled writes) against ``journal_threshold``.
        ``claims`` dedups webhook deliveries across processes. Call from the event loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._claims = claims
        if self._bus is not None and self._unsubscribe is None:
            self._unsubscribe = self._bus.add_listener(self.on_event)
        if pending_writes is not None and self.config.enabled:
            self._track(self._watch_journal(pending_writes), "alert-journal-watch")

    async def _watch_journal(self, pending_writes: Callable[[], int]) -> None:
        while True:
            try:
                self.check_journal(pending_writes())
            except Exception as exc:  # noqa: BLE001 - the watch must outlive one bad read
                log.warning("journal alert check failed: %s", describe(exc))
            await asyncio.sleep(self.config.check_interval)

    async def aclose(self) -> None:
        """Stop listening; give deliveries in flight up to ``timeout`` seconds, cancel the rest,
        close the client (idempotent)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = list(self._tasks)
        for task in tasks:
            if task.get_name() == "alert-journal-watch":
                task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ firing

    def fire(self, alert: Alert) -> bool:
        """Fire ``alert`` unless its key fired within the dedup window; True when fired.

        Fired means: logged, kept in :attr:`sent`, published as :class:`AlertRaised` and (when
        this process wins the fleet claim) delivered to every webhook in the background. Call
        from the event loop's thread (bus events from other threads are handed over)."""
        if not self.config.enabled:
            return False
        now = self._clock()
        last = self._last.get(alert.key)
        if last is not None and now - last < self.config.dedup_window:
            return False
        self._last[alert.key] = now
        if alert.kind != "recovered":
            self._active.add(alert.key)
        self.sent.append(alert)
        del self.sent[:-100]
        log.warning("alert %s: %s", alert.key, alert.message)
        if self._bus is not None:
            self._bus.publish(
                AlertRaised(
                    category=alert.kind,
                    key=alert.key,
                    severity=alert.severity,
                    message=alert.message,
                    service=alert.service,
                    targets=self.targets,
                )
            )
        if self.targets:
            try:
                self._track(self._send(alert), "alert-webhook")
            except RuntimeError:  # no event loop (a runtime never started): nothing can be sent
                log.warning("alert %s not sent: no event loop", alert.key)
        return True

    def recover(self, key: str, message: str, service: str | None = None) -> bool:
        """Fire a recovery for ``key`` if it alerted; True when it fired.

        A recovery that fires clears ``key``, so the next failure alerts again at once. One that
        is itself deduplicated (a backend flapping within the window) leaves ``key``'s window
        running: a flapping backend alerts at most open, recovered, open per window, never a
        storm."""
        if key not in self._active:
            return False
        self._active.discard(key)
        fired = self.fire(Alert("recovered", f"recovered:{key}", "info", message, service, {"of": key}))
        if fired:
            self._last.pop(key, None)
        return fired

    # ------------------------------------------------------------ sources

    def on_event(self, event: Event) -> None:
        """Bus listener: a breaker opening alerts; its closing again is a recovery. Webhook
        breakers are ignored. Safe from any thread (handed to the loop's)."""
        if not isinstance(event, BreakerStateChanged) or event.name.startswith(WEBHOOK_PREFIX):
            return
        if self._loop is not None and threading.get_ident() != self._thread:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to tell
                self._loop.call_soon_threadsafe(self.on_event, event)
            return
        key = f"breaker_open:{event.name}"
        if event.new_state == "open":
            reason = f": {event.reason}" if event.reason else ""
            self.fire(
                Alert("breaker_open", key, "critical", f"circuit breaker {event.name} opened{reason}", event.name)
            )
        elif event.new_state == "closed":
            self.recover(key, f"circuit breaker {event.name} closed again", event.name)

    def check_journal(self, pending: int) -> None:
        """Alert when ``pending`` journaled writes reach ``journal_threshold``; recover at 0."""
        key = "journal_backlog"
        if pending >= self.config.journal_threshold:
            self.fire(
                Alert(
                    "journal_backlog",
                    key,
                    "warning",
                    f"{pending} conversation writes wait in the local journal (Redis unreachable)",
                    "redis",
                    {"pending": pending, "threshold": self.config.journal_threshold},
                )
            )
        elif pending == 0:
            self.recover(key, "the local journal is replayed; Redis takes writes again", "redis")

    # ------------------------------------------------------------ delivery

    def _track(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            loop = self._loop or asyncio.get_running_loop()
            task = loop.create_task(coro, name=name)
        except RuntimeError:
            coro.close()  # never started: no "coroutine was never awaited" warning
            raise
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claimed(self, alert: Alert) -> bool:
        """True when this process should deliver ``alert`` (it won the fleet claim, or there is
        no shared store to ask)."""
        claims = self._claims
        if claims is None or self.config.dedup_window <= 0:
            return True
        try:
            if alert.kind == "recovered":
                # The failure's claim goes with its recovery: the next failure alerts again.
                await claims.release(str(alert.details.get("of", "")))
            return await claims.claim(alert.key, self.config.dedup_window)
        except AppError as exc:
            log.info("alert %s: fleet dedup skipped (%s); sending it", alert.key, describe(exc))
            return True

    async def _send(self, alert: Alert) -> None:
        if not await self._claimed(alert):
            log.info("alert %s: another process sent it", alert.key)
            return
        deliveries = [self._deliver(url, alert.to_dict()) for url in self.config.webhooks]
        deliveries += [self._deliver(url, alert.slack()) for url in self.config.slack_webhooks]
        await asyncio.gather(*deliveries)

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        host = urlsplit(url).hostname or "unknown"
        service = f"{WEBHOOK_PREFIX}{host}"
        guard = self._guard(service)
        import httpx  # here, not at import: the runtime's module stays light for --help

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout)
        client = self._client

        async def post() -> None:
            try:
                response = await client.post(url, json=body)
            except httpx.TimeoutException as exc:
                raise OperationTimeoutError(f"webhook {host} timed out", service=service) from exc
            except httpx.HTTPError as exc:
                raise ServiceUnavailableError(f"webhook {host}: {exc}", service=service) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise ExternalServiceError(f"webhook {host} answered {response.status_code}", service=service)
            if response.status_code >= 400:
                raise ValidationError(f"webhook {host} refused the alert ({response.status_code})")

        try:
            async with asyncio.timeout(self.config.timeout):
                await guard.call(post)
        except TimeoutError:
            log.warning("alert to %s not delivered within %.1f s", host, self.config.timeout)
        except AppError as exc:
            log.warning("alert to %s not delivered: %s", host, describe(exc))

    @property
    def delivering(self) -> int:
        """Alerts whose webhook deliveries (fleet claim included) are still running."""
        return sum(1 for t in list(self._tasks) if t.get_name() == "alert-webhook" and not t.done())

    async def wait_delivered(self) -> None:
        """Wait for the deliveries in flight (tests, shutdown); the journal watch is not waited for."""
        while True:
            busy = [t for t in self._tasks if t.get_name() == "alert-webhook"]
            if not busy:
                return
            await asyncio.gather(*busy, return_exceptions=True)
