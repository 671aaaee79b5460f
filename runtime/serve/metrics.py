"""``/metrics`` in the Prometheus text format (prometheus-client), and what feeds it.

- ``holdfast_http_requests_total`` and ``holdfast_http_request_duration_seconds`` by route
  template (``/v1/conversations/{conversation_id}/messages``, never the raw path: bounded
  labels), method and status; a stream is timed to its last byte;
- ``holdfast_breaker_state`` (0 closed, 1 half-open, 2 open) and
  ``holdfast_breaker_transitions_total`` per service and new state;
- ``holdfast_retries_total`` and ``holdfast_fallbacks_total`` per service;
- ``holdfast_turns_total`` by outcome, ``holdfast_turn_phase_seconds`` per phase (the turn's
  own timings: lock, save, recall, prompt, llm, tools...), ``holdfast_tokens_total`` by kind;
- ``holdfast_alerts_total`` by kind (alerts this process raised, :mod:`runtime.host.alerts`);
- ``holdfast_health_status`` per health check and ``overall`` (0 healthy, 1 degraded, 2
  unhealthy) as this process's health monitor last found it (its background probes every
  ``[server].health_interval`` seconds; a scrape runs no check);
- ``holdfast_journal_pending_writes``, ``holdfast_memory_queue_depth``, ``holdfast_turns_running``,
  ``holdfast_workers`` (worker processes alive).

Event-fed metrics come from the runtime's bus (:meth:`Metrics.on_event`, inline and cheap);
gauges are read from the runtime by :meth:`Metrics.refresh` (at each scrape, and every
:data:`REFRESH_SECONDS` in the background with several workers).

One process: each app has its own registry, so several apps in one process (tests) never share
counters. ``holdfast serve --workers N``: prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, a fresh directory per server made by
:mod:`runtime.serve.workers` before the workers start): every worker writes its values to files
there and a scrape, whichever worker answers it, reports the merge of all of them: counters and
histograms summed (a dead worker's counts stay), ``holdfast_turns_running``,
``holdfast_memory_queue_depth`` and ``holdfast_workers`` summed over live workers,
``holdfast_breaker_state``, ``holdfast_health_status`` and ``holdfast_journal_pending_writes`` the
maximum over live workers (the worst breaker or check; the journal file is the data dir's, shared by every worker). A worker's
live gauges are dropped when it exits (``mark_process_dead``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.core.events import (
    AlertRaised,
    BreakerStateChanged,
    Event,
    FallbackUsed,
    HealthChanged,
    RetryScheduled,
    TurnFinished,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The environment variable of prometheus-client's multiprocess mode (its own name).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds between two background refreshes of a worker's gauges (multiprocess mode).
REFRESH_SECONDS = 1.0
_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_HEALTH_VALUES = {"healthy": 0.0, "degraded": 1.0, "unhealthy": 2.0}
#: Latency buckets in seconds, from a cached health answer to a long tool-using turn.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: How each gauge read from the runtime merges across workers (prometheus-client's modes).
GAUGE_MODES = {
    "holdfast_journal_pending_writes": "livemax",
    "holdfast_memory_queue_depth": "livesum",
    "holdfast_turns_running": "livesum",
}


def multiprocess_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """The multiprocess directory when this process is one of several workers, else None."""
    path = (environ if environ is not None else os.environ).get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


class Metrics:
    """The app's instruments and how they are rendered (see the module doc).

    ``gauges()`` gives name -> (help, value) for the names of :data:`GAUGE_MODES`, ``breakers()``
    (service, state) pairs; both are read by :meth:`refresh`. ``multiprocess``: the directory of
    prometheus-client's multiprocess mode (default: :func:`multiprocess_dir`), or None for one
    process.
    """

    def __init__(
        self,
        gauges: Callable[[], Mapping[str, tuple[str, float]]],
        breakers: Callable[[], Iterable[tuple[str, str]]],
        *,
        multiprocess: str | None = None,
    ) -> None:
        self.multiprocess = multiprocess if multiprocess is not None else multiprocess_dir()
        self._read_gauges = gauges
        self._read_breakers = breakers
        # Several workers: values live in the multiprocess files, read back by the collector.
        # One process: the app's own registry.
        reg = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self.registry = CollectorRegistry(auto_describe=True) if reg is None else reg
        if self.multiprocess:
            MultiProcessCollector(self.registry, path=self.multiprocess)
        self.requests = Counter(
            "holdfast_http_requests", "HTTP requests answered.", ["route", "method", "status"], registry=reg
        )
        self.latency = Histogram(
            "holdfast_http_request_duration_seconds",
            "Time to the last byte of the response, in seconds.",
            ["route", "method", "status"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.transitions = Counter(
            "holdfast_breaker_transitions", "Circuit breaker transitions.", ["service", "state"], registry=reg
        )
        self.retries = Counter("holdfast_retries", "Retries of guarded calls.", ["service"], registry=reg)
        self.fallbacks = Counter("holdfast_fallbacks", "Fallback answers used.", ["service", "fallback"], registry=reg)
        self.turns = Counter("holdfast_turns", "Turns finished, by outcome.", ["outcome"], registry=reg)
        self.phases = Histogram(
            "holdfast_turn_phase_seconds", "Time per turn phase, in seconds.", ["phase"], buckets=_BUCKETS, registry=reg
        )
        self.tokens = Counter("holdfast_tokens", "Tokens used by turns.", ["kind"], registry=reg)
        self.server_errors = Counter("holdfast_server_errors", "5xx answers, by error type.", ["type"], registry=reg)
        self.alerts = Counter("holdfast_alerts", "Alerts raised (after dedup), by kind.", ["kind"], registry=reg)
        self.workers = Gauge("holdfast_workers", "Worker processes serving.", registry=reg, multiprocess_mode="livesum")
        self.workers.set(1)
        self.breaker_state = Gauge(
            "holdfast_breaker_state",
            "Circuit breaker state (0 closed, 1 half-open, 2 open).",
            ["service"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.health = Gauge(
            "holdfast_health_status",
            "Health check status as the monitor last found it (0 healthy, 1 degraded, 2 unhealthy).",
            ["check"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        # Labelled children by label values: ``labels()`` validates and locks on every call,
        # ~5 us each, a dozen times per turn (one per turn phase); the children never change.
        self._phase: dict[str, Histogram] = {}
        self._http: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._gauges: dict[str, Gauge] = {}
        for name, (help_text, _) in gauges().items():
            mode = GAUGE_MODES.get(name, "livesum")
            self._gauges[name] = Gauge(name, help_text, registry=reg, multiprocess_mode=mode)  # type: ignore[arg-type]

    def on_event(self, event: Event) -> None:
        """Bus listener: count breaker transitions, retries, fallbacks, finished turns, alerts;
        set each health check's status."""
        if isinstance(event, TurnFinished):
            outcome = "failed" if event.failed else "interrupted" if event.interrupted else "ok"
            self.turns.labels(outcome).inc()
            for phase, ms in event.timings.items():
                child = self._phase.get(phase)
                if child is None:
                    child = self._phase[phase] = self.phases.labels(phase.removesuffix("_ms"))
                child.observe(ms / 1000.0)
            for kind in ("prompt_tokens", "completion_tokens"):
                count = event.usage.get(kind, 0)
                if count:
                    self.tokens.labels(kind.removesuffix("_tokens")).inc(count)
        elif isinstance(event, BreakerStateChanged):
            self.transitions.labels(event.name, event.new_state).inc()
            self.breaker_state.labels(event.name).set(_STATE_VALUES.get(event.new_state, -1.0))
        elif isinstance(event, RetryScheduled):
            self.retries.labels(event.service).inc()
        elif isinstance(event, FallbackUsed):
            self.fallbacks.labels(event.service, event.fallback).inc()
        elif isinstance(event, AlertRaised):
            self.alerts.labels(event.category).inc()
        elif isinstance(event, HealthChanged):
            self.health.labels(event.name).set(_HEALTH_VALUES.get(event.new_status, -1.0))

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        """Count one HTTP request of ``route`` (its template) and its time to the last byte."""
        key = (route, method, status)
        children = self._http.get(key)
        if children is None:
            children = self._http[key] = (self.requests.labels(*key), self.latency.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def refresh(self) -> None:
        """Read the gauges and breaker states from the runtime now."""
        for name, (_, value) in self._read_gauges().items():
            gauge = self._gauges.get(name)
            if gauge is not None:
                gauge.set(value)
        for service, state in self._read_breakers():
            self.breaker_state.labels(service).set(_STATE_VALUES.get(state, -1.0))

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (merged over workers in multiprocess mode)."""
        self.refresh()
        return generate_latest(self.registry)

    def close(self) -> None:
        """This worker is leaving: drop its live gauges from the merge (multiprocess mode)."""
        if self.multiprocess:
            mark_process_dead(os.getpid(), self.multiprocess)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request to its last byte, labelled by route
    template (the matched route's ``path``, which FastAPI puts in the scope; ``unmatched``
    otherwise). ``metrics`` gives the app's :class:`Metrics` (None before the lifespan built it)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call; HTTP requests are counted and timed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        route = "unmatched"

        async def send_status(message: Message) -> None:
            nonlocal status, route
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = str(getattr(scope.get("route"), "path", None) or "unmatched")
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics = self._metrics()
            if metrics is not None:
                metrics.observe_request(route, scope.get("method", ""), str(status), time.perf_counter() - started)
