"""Alerts as notices: every :class:`~runtime.core.events.AlertRaised` becomes one toast.

The runtime's alert policy (:mod:`runtime.host.alerts`) has already deduplicated them (one per
key, e.g. ``breaker_open:llm``, per ``[alerts].dedup_window`` seconds; a flapping backend at most
open, recovered, open per window), so a toast per event is no storm; the live state stays in the
sticky backend lines (:mod:`app.widgets.backend_lines`), which say where a backend stands now.
These are the same alerts the configured webhooks get, whichever face runs.
"""

from __future__ import annotations

from typing import Literal, Protocol

from app.safe_text import one_line, plural
from runtime.core.events import AlertRaised

ToastSeverity = Literal["information", "warning", "error"]

#: Toast severity and seconds on screen, by alert severity: a service down stays longest.
_TOASTS: dict[str, tuple[ToastSeverity, float]] = {
    "critical": ("error", 15.0),
    "warning": ("warning", 10.0),
    "info": ("information", 6.0),
}


class Notifier(Protocol):
    """What showing an alert needs of the app: Textual's ``App.notify``."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: ToastSeverity = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Show a toast."""
        ...


def alert_toast(event: AlertRaised) -> tuple[str, str, ToastSeverity, float]:
    """The toast of an alert: (title, message, Textual severity, seconds on screen).

    The title says it is an alert and how bad (``Alert: critical``); the message is the
    alert's one line, plus how many webhooks are configured (they are told once per window
    across every Holdfast process on the same Redis)."""
    severity, timeout = _TOASTS.get(event.severity, ("warning", 10.0))
    title = "Recovered" if event.category == "recovered" else f"Alert: {event.severity}"
    message = one_line(event.message, 200)
    if event.targets:
        message += f" ({plural(event.targets, 'webhook')} configured)"
    return title, message, severity, timeout


def show_alert(app: Notifier, event: AlertRaised) -> None:
    """Show ``event`` as one toast on ``app`` (literal text: never markup)."""
    title, message, severity, timeout = alert_toast(event)
    app.notify(message, title=title, severity=severity, timeout=timeout, markup=False)
