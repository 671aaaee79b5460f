"""Alerts to webhooks: 5xx errors, a breaker opening, the journal growing, and each recovery.

Targets come from ``[alerts]``: ``webhooks`` get a plain JSON body (:meth:`Alert.to_dict`),
``slack_webhooks`` Slack's incoming-webhook body ``{"text": ...}``. An alert has a ``key`` (kind
and what it is about, e.g. ``breaker_open:llm``); the same key fires at most once per
``dedup_window`` seconds, and a recovery (``recovered:breaker_open:llm``) fires only for a key
that alerted, then clears it so the next failure alerts again.

Delivery runs in background tasks, each POST through ``Guard("webhook:<host>")`` (retries,
breaker) and bounded by ``[alerts].timeout`` seconds: a dead or slow webhook never slows or fails
a request, and its failures are only logged. The clock is injected (monotonic seconds).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from runtime.config import AlertsConfig
from runtime.core.errors import (
    AppError,
    ExternalServiceError,
    OperationTimeoutError,
    ServiceUnavailableError,
    ValidationError,
    describe,
)
from runtime.core.events import BreakerStateChanged, Event
from runtime.serve.errors import ServerErrorReport

log = logging.getLogger(__name__)

T = TypeVar("T")


class GuardLike(Protocol):
    """What alerts need of :class:`runtime.resilience.Guard`: ``await guard.call(fn)``."""

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` with retries and a breaker; raises AppErrors only."""
        ...


@dataclass(frozen=True)
class Alert:
    """One alert: ``kind`` (``server_error``, ``breaker_open``, ``journal_backlog``, ``recovered``),
    ``key`` (its dedup key), ``severity`` (``critical``, ``warning``, ``info``), one-line
    ``message``, ``service`` when known, ``details``, and the wall-clock time ``at``."""

    kind: str
    key: str
    severity: str
    message: str
    service: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON webhook body (plus ``host``: which replica sent it)."""
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
        """Slack's incoming-webhook body."""
        icon = {"critical": ":red_circle:", "warning": ":warning:"}.get(self.severity, ":large_green_circle:")
        return {"text": f"{icon} Holdfast [{self.severity}] {self.message}"}


class Alerts:
    """Fires deduplicated alerts to the configured webhooks (see the module doc).

    Args:
        config: the ``[alerts]`` section.
        guard: the Guard of a service name (``Resilience.guard``), used per webhook host.
        clock: monotonic seconds, for the dedup window.
        client: the HTTP client (default: one of its own, closed by :meth:`aclose`).
    """

    def __init__(
        self,
        config: AlertsConfig,
        guard: Callable[[str], GuardLike],
        *,
        clock: Callable[[], float] = time.monotonic,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self._guard = guard
        self._clock = clock
        self._client = client or httpx.AsyncClient(timeout=config.timeout)
        self._own_client = client is None
        self._last: dict[str, float] = {}
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Alerts sent (after dedup), newest last; for the UI and tests.
        self.sent: list[Alert] = []

    @property
    def targets(self) -> int:
        """How many webhooks are configured."""
        return len(self.config.webhooks) + len(self.config.slack_webhooks)

    def fire(self, alert: Alert) -> bool:
        """Send ``alert`` unless its key fired within the dedup window; True when sent."""
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
        for url in self.config.webhooks:
            self._spawn(url, alert.to_dict())
        for url in self.config.slack_webhooks:
            self._spawn(url, alert.slack())
        return True

    def recover(self, key: str, message: str, service: str | None = None) -> bool:
        """Send a recovery for ``key`` if it alerted (and clear it, so a new failure alerts)."""
        if key not in self._active:
            return False
        self._active.discard(key)
        self._last.pop(key, None)
        return self.fire(Alert("recovered", f"recovered:{key}", "info", message, service))

    # ------------------------------------------------------------ sources

    def on_event(self, event: Event) -> None:
        """Bus listener: a breaker opening alerts; its closing again is a recovery."""
        if not isinstance(event, BreakerStateChanged):
            return
        key = f"breaker_open:{event.name}"
        if event.new_state == "open":
            reason = f": {event.reason}" if event.reason else ""
            self.fire(
                Alert("breaker_open", key, "critical", f"circuit breaker {event.name} opened{reason}", event.name)
            )
        elif event.new_state == "closed":
            self.recover(key, f"circuit breaker {event.name} closed again", event.name)

    def on_server_error(self, report: ServerErrorReport) -> None:
        """Global error handler hook: every 5xx alerts, one per error type and service per window."""
        about = report.service or report.path
        self.fire(
            Alert(
                "server_error",
                f"server_error:{report.type}:{about}",
                "critical",
                f"{report.status} {report.type} on {report.path}: {report.message}",
                report.service,
                {"status": report.status, "request_id": report.request_id, "path": report.path},
            )
        )

    def check_journal(self, pending: int) -> None:
        """Alert when ``pending`` journaled writes pass ``journal_threshold``; recover below it."""
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

    def _spawn(self, url: str, body: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(url, body), name="alert-webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        host = urlsplit(url).hostname or "unknown"
        guard = self._guard(f"webhook:{host}")

        async def post() -> None:
            try:
                response = await self._client.post(url, json=body)
            except httpx.TimeoutException as exc:
                raise OperationTimeoutError(f"webhook {host} timed out", service=f"webhook:{host}") from exc
            except httpx.HTTPError as exc:
                raise ServiceUnavailableError(f"webhook {host}: {exc}", service=f"webhook:{host}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise ExternalServiceError(f"webhook {host} answered {response.status_code}", service=f"webhook:{host}")
            if response.status_code >= 400:
                raise ValidationError(f"webhook {host} refused the alert ({response.status_code})")

        try:
            async with asyncio.timeout(self.config.timeout):
                await guard.call(post)
        except TimeoutError:
            log.warning("alert to %s not delivered within %.1f s", host, self.config.timeout)
        except AppError as exc:
            log.warning("alert to %s not delivered: %s", host, describe(exc))

    async def wait_delivered(self) -> None:
        """Wait for the deliveries in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Give deliveries in flight up to ``timeout`` seconds, cancel the rest, close the client."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=self.config.timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._own_client:
            await self._client.aclose()
