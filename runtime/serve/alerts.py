"""The server's own alert: every 5xx answer, one per error type and service per dedup window.

The alert policy (dedup, recovery, webhooks through a Guard, the breaker and journal triggers) is
the runtime's, shared with the TUI: :mod:`runtime.host.alerts`. This module only turns a
:class:`~runtime.serve.errors.ServerErrorReport` of the global error handler into an
:class:`~runtime.host.alerts.Alert` and fires it on the runtime's :class:`Alerts`.
"""

from __future__ import annotations

from runtime.host.alerts import Alert, Alerts
from runtime.serve.errors import ServerErrorReport


def server_error_alert(report: ServerErrorReport) -> Alert:
    """The ``server_error`` alert of a 5xx: key ``server_error:<type>:<service or path>``
    (e.g. ``server_error:external_service_error:llm``), severity ``critical``."""
    about = report.service or report.path
    return Alert(
        "server_error",
        f"server_error:{report.type}:{about}",
        "critical",
        f"{report.status} {report.type} on {report.path}: {report.message}",
        report.service,
        {"status": report.status, "request_id": report.request_id, "path": report.path},
    )


def on_server_error(alerts: Alerts, report: ServerErrorReport) -> bool:
    """Fire the alert of ``report`` (deduplicated by ``alerts``); True when it fired."""
    return alerts.fire(server_error_alert(report))
