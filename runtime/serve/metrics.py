"""``/metrics`` in the Prometheus text format (prometheus-client), and what feeds it.

Per process (each uvicorn worker exposes its own; scrape each, or aggregate by ``instance``):

- ``holdfast_http_requests_total`` and ``holdfast_http_request_duration_seconds`` by route
  template (``/v1/conversations/{conversation_id}/messages``, never the raw path: bounded
  labels), method and status; a stream is timed to its last byte;
- ``holdfast_breaker_state`` (0 closed, 1 half-open, 2 open) and
  ``holdfast_breaker_transitions_total`` per service and new state;
- ``holdfast_retries_total`` and ``holdfast_fallbacks_total`` per service;
- ``holdfast_turns_total`` by outcome, ``holdfast_turn_phase_seconds`` per phase (the turn's
  own timings: lock, save, recall, prompt, llm, tools...), ``holdfast_tokens_total`` by kind;
- ``holdfast_journal_pending_writes``, ``holdfast_memory_queue_depth``, ``holdfast_turns_running``.

Event-fed metrics come from the runtime's bus (:meth:`Metrics.on_event`, inline and cheap);
gauges are read when scraped. Each app has its own registry, so several apps in one process
(tests) never share counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.core.events import BreakerStateChanged, Event, FallbackUsed, RetryScheduled, TurnFinished

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
#: Latency buckets in seconds, from a cached health answer to a long tool-using turn.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Gauges(Collector):
    """Gauges read at scrape time from ``read`` (name -> (help, value)) and breaker states."""

    def __init__(
        self, read: Callable[[], Mapping[str, tuple[str, float]]], breakers: Callable[[], Iterable[tuple[str, str]]]
    ) -> None:
        self._read = read
        self._breakers = breakers

    def collect(self) -> Iterable[Metric]:
        """The current values (prometheus-client calls this on every scrape)."""
        for name, (help_text, value) in self._read().items():
            yield GaugeMetricFamily(name, help_text, value=value)
        states = GaugeMetricFamily(
            "holdfast_breaker_state", "Circuit breaker state (0 closed, 1 half-open, 2 open).", labels=["service"]
        )
        for service, state in self._breakers():
            states.add_metric([service], _STATE_VALUES.get(state, -1.0))
        yield states


class Metrics:
    """The app's registry and its instruments. ``gauges`` and ``breakers`` are read per scrape:
    ``gauges()`` gives name -> (help, value), ``breakers()`` (service, state) pairs."""

    def __init__(
        self,
        gauges: Callable[[], Mapping[str, tuple[str, float]]],
        breakers: Callable[[], Iterable[tuple[str, str]]],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
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
        reg.register(_Gauges(gauges, breakers))

    def on_event(self, event: Event) -> None:
        """Bus listener: count breaker transitions, retries, fallbacks, finished turns."""
        if isinstance(event, TurnFinished):
            outcome = "failed" if event.failed else "interrupted" if event.interrupted else "ok"
            self.turns.labels(outcome).inc()
            for phase, ms in event.timings.items():
                self.phases.labels(phase.removesuffix("_ms")).observe(ms / 1000.0)
            for kind in ("prompt_tokens", "completion_tokens"):
                count = event.usage.get(kind, 0)
                if count:
                    self.tokens.labels(kind.removesuffix("_tokens")).inc(count)
        elif isinstance(event, BreakerStateChanged):
            self.transitions.labels(event.name, event.new_state).inc()
        elif isinstance(event, RetryScheduled):
            self.retries.labels(event.service).inc()
        elif isinstance(event, FallbackUsed):
            self.fallbacks.labels(event.service, event.fallback).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


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
                labels = (route, scope.get("method", ""), str(status))
                metrics.requests.labels(*labels).inc()
                metrics.latency.labels(*labels).observe(time.perf_counter() - started)
