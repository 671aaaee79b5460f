"""The app factory and its lifespan: :func:`create_app` builds the FastAPI app over one Runtime.

The lifespan starts the :class:`~runtime.host.runtime.Runtime` (embedded redis-server and demo
LLM server when nothing is configured, exactly as the TUI does), builds the server's parts
(:class:`~runtime.serve.state.ServeState`), runs the background loop (expired-session cleanup)
and, at shutdown, drains running turns (:mod:`runtime.serve.shutdown`) before it stops the
runtime. Alerts are the runtime's (:mod:`runtime.host.alerts`); this app adds its 5xx answers.

uvicorn's worker processes cannot be handed a Python object, so ``holdfast serve --workers N``
passes the configuration in the environment (:data:`CONFIG_ENV`, JSON) and each worker builds
its app with :func:`app_from_env`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from runtime.config import Config
from runtime.core.errors import AppError, describe
from runtime.serve import alerts, conversations, health, openai_face, sessions
from runtime.serve.errors import GlobalErrorHandler, ServerErrorReport
from runtime.serve.metrics import CONTENT_TYPE, REFRESH_SECONDS, Metrics, MetricsMiddleware
from runtime.serve.request_ids import RequestIdMiddleware
from runtime.serve.state import ServeState

log = logging.getLogger(__name__)

#: Environment variable carrying ``{"config": ..., "host": ...}`` to uvicorn worker processes.
CONFIG_ENV = "HOLDFAST_SERVE_CONFIG"
#: Seconds between two sweeps of expired sessions.
SESSION_CLEANUP_SECONDS = 60.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(config: Config, *, host: str | None = None) -> FastAPI:
    """The HTTP app over a Runtime built from ``config`` (started by the app's lifespan).

    ``host`` is the address the server binds (default ``[server].host``): bound to loopback, a
    request without an API key is the single local user while no key exists; bound anywhere
    else, every request needs a key.
    """
    bound = host if host is not None else config.server.host
    app = FastAPI(
        title="Holdfast",
        summary="A conversational agent runtime that does not fall over, as an HTTP service.",
        version="1",
        lifespan=lambda app: _lifespan(app, config, bound),
    )

    def on_server_error(report: ServerErrorReport) -> None:
        state: ServeState | None = getattr(app.state, "serve", None)
        if state is not None:
            state.metrics.server_errors.labels(report.type).inc()
            alerts.on_server_error(state.runtime.alerts, report)

    handler = GlobalErrorHandler(
        development=config.server.environment == "development", on_server_error=on_server_error
    )
    handler.install(app)
    app.state.error_handler = handler
    for router in (health.router, conversations.router, sessions.router, openai_face.router):
        app.include_router(router)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this process (text format 0.0.4)."""
        state: ServeState | None = getattr(app.state, "serve", None)
        body = state.metrics.render() if state is not None else b""
        return Response(body, media_type=CONTENT_TYPE)

    app.add_middleware(MetricsMiddleware, metrics=lambda: getattr(getattr(app.state, "serve", None), "metrics", None))
    # Added last, so outermost: the id is set before anything logs, and a crash still gets it.
    app.add_middleware(RequestIdMiddleware, handler=handler)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI, config: Config, host: str) -> AsyncIterator[None]:
    from runtime.host.runtime import Runtime, default_user
    from runtime.serve.auth import ApiKeys, Authenticator
    from runtime.serve.idempotency import Idempotency
    from runtime.serve.models import ModelCatalog
    from runtime.serve.rate_limits import RateLimiter
    from runtime.serve.shutdown import TurnTracker
    from runtime.serve.turns import TurnService
    from runtime.state.client import RedisRunner, make_redis_client

    server = config.server
    user = server.local_user or default_user(config)
    rt = Runtime.from_config(config, user=user, face="serve")
    # As often as the TUI probes: a turn refused by a backend the last probe found down fails to
    # its degraded answer at once (issue 16's rule), instead of waiting through its retries.
    rt.set_health_interval(server.health_interval)
    tracker = TurnTracker()

    def gauges() -> Mapping[str, tuple[str, float]]:
        store = rt.store_status()
        return {
            "holdfast_journal_pending_writes": (
                "Conversation writes waiting in the local journal.",
                store.pending_writes,
            ),
            "holdfast_memory_queue_depth": (
                "Memory writes waiting for the memory store.",
                float(len(rt.memory.queue)) if rt.memory is not None else 0.0,
            ),
            "holdfast_turns_running": ("Turns running in this process.", float(tracker.running)),
        }

    metrics = Metrics(gauges, lambda: [(b.name, b.state) for b in rt.breaker_snapshots()])
    # Subscribed before the start: a breaker opening or an alert while it starts is counted too.
    unsubscribe = [rt.subscribe(metrics.on_event)]
    await rt.start()
    client = make_redis_client(rt.redis_url)
    runner = RedisRunner(client, rt.resilience.guard("redis"))
    prefix = config.redis.key_prefix
    state = ServeState(
        config=config,
        runtime=rt,
        redis=runner,
        auth=Authenticator(ApiKeys(runner, key_prefix=prefix), user if is_loopback(host) else None),
        limiter=RateLimiter(
            runner,
            requests_per_minute=server.requests_per_minute,
            tokens_per_minute=server.tokens_per_minute,
            key_prefix=prefix,
        ),
        idempotency=Idempotency(
            runner,
            key_prefix=prefix,
            ttl=server.idempotency_ttl,
            wait=config.agent.turn_lock_timeout + config.resilience.llm.deadline,
        ),
        turns=TurnService(rt, tracker),
        tracker=tracker,
        metrics=metrics,
        models=ModelCatalog(rt),
    )
    loops = [asyncio.create_task(_background(state), name="serve-background")]
    if metrics.multiprocess:
        loops.append(asyncio.create_task(_refresh_metrics(metrics), name="serve-metrics"))
    app.state.serve = state
    log.info("holdfast serve: ready (user %s, keys required: %s)", user, not is_loopback(host))
    try:
        yield
    finally:
        await tracker.drain(server.grace_period)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for stop in unsubscribe:
            stop()
        await client.aclose()
        await rt.stop()
        metrics.close()
        app.state.serve = None


async def _background(state: ServeState) -> None:
    """Expired sessions swept every :data:`SESSION_CLEANUP_SECONDS` (journal-depth and breaker
    alerts are the runtime's own, :mod:`runtime.host.alerts`)."""
    while True:
        try:
            removed = await state.runtime.sessions.cleanup_expired_sessions()
            if removed:
                log.info("removed %d expired session(s)", removed)
        except AppError as exc:
            log.info("session cleanup skipped: %s", describe(exc))
        await asyncio.sleep(SESSION_CLEANUP_SECONDS)


async def _refresh_metrics(metrics: Metrics) -> None:
    """With several workers, a scrape merges every worker's files: keep this worker's gauges
    (turns running, journal, memory queue, breakers) fresh there every
    :data:`~runtime.serve.metrics.REFRESH_SECONDS`."""
    while True:
        metrics.refresh()
        await asyncio.sleep(REFRESH_SECONDS)


def config_to_env(config: Config, host: str) -> str:
    """The :data:`CONFIG_ENV` value that makes :func:`app_from_env` build this app."""
    return json.dumps({"config": config.model_dump(mode="json"), "host": host})


def app_from_env(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app of a uvicorn worker process, from :data:`CONFIG_ENV` (set by ``holdfast serve``)."""
    raw = (environ if environ is not None else os.environ).get(CONFIG_ENV)
    if not raw:
        from runtime.config import load_config

        loaded = load_config().config
        return create_app(loaded)
    data: dict[str, Any] = json.loads(raw)
    config = Config.model_validate(data["config"])
    from runtime.core.logs import setup_logging

    logs = config.logging
    setup_logging(config.log_path, logs.level, max_bytes=logs.max_bytes, backups=logs.backups)
    return create_app(config, host=str(data["host"]))
