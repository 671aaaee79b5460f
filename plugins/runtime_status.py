"""Built-in plugin: ``runtime_status``, the breaker and health snapshot, so the model can
explain an outage in plain words ("the memory store is down, answers may miss context")."""

from __future__ import annotations

from typing import Any

from runtime.tools import ToolContext, tool


@tool(name="runtime_status")
def runtime_status(ctx: ToolContext) -> dict[str, Any]:
    """The state of Holdfast's backends: each circuit breaker and the last health check."""
    breakers = []
    if ctx.resilience is not None:
        for snap in ctx.resilience.snapshots():
            breakers.append({k: snap.get(k) for k in ("name", "state", "failure_count", "last_error") if k in snap})
    health: dict[str, Any] = {}
    report = ctx.monitor.snapshot() if ctx.monitor is not None else None
    if report is not None:
        health["status"] = getattr(report.status, "value", str(report.status))
        health["checks"] = {
            name: {"status": getattr(r.status, "value", str(r.status)), "error": r.error}
            for name, r in report.checks.items()
        }
    else:
        health["status"] = "not checked yet"
    return {"breakers": breakers, "health": health}
