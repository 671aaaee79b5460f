"""Health checks for the ``memory`` and ``embeddings`` backends, for the HealthMonitor.

They probe the backend directly, not through the guards: a check is the independent
observation that tells us a backend is back, and going through an open breaker would only
echo the breaker. A green memory check also starts draining the write queue.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runtime.core.errors import describe
from runtime.memory.records import table_name

if TYPE_CHECKING:
    from runtime.memory.store import VectorMemoryStore
    from runtime.resilience import CheckResult


async def check_memory(store: VectorMemoryStore) -> CheckResult:
    """Check that the store's table opens and a one-row query answers, on a fresh connection.

    Returns:
        HEALTHY (and the write queue starts draining) with ``rows`` and ``queued_writes`` in
        the details (and ``dead_letters`` with ``dead_letter_file`` once a write could never apply), or UNHEALTHY with the error; latency in milliseconds. Never raises.
    """
    import lancedb

    from runtime.resilience import CheckResult, HealthStatus

    started = time.perf_counter()
    details: dict[str, Any] = {"table": store.table_name, "queued_writes": len(store.queue)}
    if store.queue.dead_letters:
        # Writes that could never apply: out of the queue (nothing waits behind them), kept for a person.
        details["dead_letters"] = store.queue.dead_letters
        details["dead_letter_file"] = str(store.queue.dead_letter_path)
    try:
        db = await lancedb.connect_async(store.uri)
        try:
            name = table_name(store.embedder.table_suffix)
            if name in (await db.list_tables()).tables:
                table = await db.open_table(name)
                try:
                    await table.query().select(["id"]).limit(1).to_list()
                    details["rows"] = await table.count_rows()
                finally:
                    table.close()
            else:
                details["rows"] = 0
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - any failure here is exactly what the check reports
        return CheckResult(status=HealthStatus.UNHEALTHY, latency_ms=_ms(started), details=details, error=describe(exc))
    store.schedule_drain()
    return CheckResult(status=HealthStatus.HEALTHY, latency_ms=_ms(started), details=details)


async def check_embeddings(store: VectorMemoryStore) -> CheckResult:
    """Check that the store's embedding provider answers one embedding.

    The local model is not loaded just for this: until first use the check only confirms
    its files are present.

    Returns:
        HEALTHY (and the write queue starts draining), DEGRADED for the lexical stand-in, or
        UNHEALTHY with the error; latency in milliseconds. Never raises.
    """
    from runtime.resilience import CheckResult, HealthStatus

    embedder = store.embedder
    started = time.perf_counter()
    details: dict[str, Any] = {"provider": embedder.provider, "model": embedder.model}
    minilm = getattr(embedder, "minilm", None)
    try:
        if minilm is not None and not minilm.loaded:
            details["loaded"] = False
            if not minilm.files_present():
                return CheckResult(
                    status=HealthStatus.UNHEALTHY,
                    latency_ms=_ms(started),
                    details=details,
                    error="embedding model files are missing",
                )
        else:
            details["loaded"] = True
            await embedder.embed(["health check"])
    except Exception as exc:  # noqa: BLE001 - any failure here is exactly what the check reports
        return CheckResult(status=HealthStatus.UNHEALTHY, latency_ms=_ms(started), details=details, error=describe(exc))
    if embedder.degraded:
        return CheckResult(
            status=HealthStatus.DEGRADED,
            latency_ms=_ms(started),
            details=details,
            error="lexical stand-in configured: recall is by word overlap only",
        )
    store.schedule_drain()
    return CheckResult(status=HealthStatus.HEALTHY, latency_ms=_ms(started), details=details)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
