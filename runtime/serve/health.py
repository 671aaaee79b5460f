"""Health routes: ``/health`` (every check), ``/livez`` (the process answers), ``/readyz`` (it can
take writes). None needs a key: orchestrators and load balancers call them.

``/health`` is the spec's ``run_checks``: the overall status (healthy / degraded / unhealthy) and
each check with its status, latency (ms), details and error; 200 unless unhealthy (503), so a
degraded replica stays in rotation. ``/readyz`` is 200 when conversation writes can be taken:
Redis answers, or it does not and the local journal takes them (the degraded mode the design
promises); 503 while shutting down. ``/livez`` never touches a backend.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from runtime.core.errors import AppError, describe
from runtime.serve.state import State

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """Ready when conversation writes can be taken (Redis, or the journal while Redis is out)."""
    if state.tracker.closing:
        return JSONResponse({"status": "shutting_down", "ready": False}, status_code=503)
    body: dict[str, Any] = {"redis": "ok", "journal": "idle"}
    ready = True
    try:
        await state.redis.ping()
    except AppError as exc:
        body["redis"] = describe(exc)
        store = state.runtime.store_status()
        journal_ok = os.access(state.config.data_path, os.W_OK)
        body["journal"] = f"taking writes ({store.pending_writes} pending)" if journal_ok else "not writable"
        ready = bool(journal_ok)
    body.update(status="ready" if ready else "not_ready", ready=ready)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/health")
async def health(state: State) -> JSONResponse:
    """Every health check now (each bounded by its timeout), breakers, store and queue depths."""
    report = await state.runtime.health()
    status = 503 if report.get("status") == "unhealthy" else 200
    return JSONResponse(report, status_code=status)
