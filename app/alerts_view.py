"""Alerts as notices: an :class:`~runtime.core.events.AlertRaised` is a note on its backend's
sticky line, or one toast when no line says it.

The runtime's alert policy (:mod:`runtime.host.alerts`) has already deduplicated them (one per
key, e.g. ``breaker_open:llm``, per ``[alerts].dedup_window`` seconds; a flapping backend at most
open, recovered, open per window). A breaker alert (``breaker_open:<name>`` and its
``recovered:...``) says what the sticky backend line (:mod:`app.widgets.backend_lines`) above the
composer already says, so it adds a note to that line ("alert: 1 webhook configured") instead of
a toast that repeated the line and covered the composer for 15 s (issue 16 break-test). Other
alerts (the journal backlog, server errors) have no line and stay one toast each. These are the
same alerts the configured webhooks get, whichever face runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from app.safe_text import one_line, plural
from runtime.core.events import AlertRaised

if TYPE_CHECKING:
    from app.widgets.backend_lines import BackendLines, LineKind

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


def sticky_line(event: AlertRaised) -> str | None:
    """The backend line a breaker alert belongs to (its ``service``: ``llm``, ``redis``...),
    None for alerts no sticky line shows (journal backlog, server errors)."""
    if event.key.startswith(("breaker_open:", "recovered:breaker_open:")) and event.service:
        return event.service
    return None


def alert_note(event: AlertRaised) -> str:
    """The note a breaker alert adds to its line: that it is an alert, and how many webhooks are
    configured (``alert: 1 webhook configured``; ``alert raised`` with none)."""
    word = "recovery" if event.category == "recovered" else "alert"
    return f"{word}: {plural(event.targets, 'webhook')} configured" if event.targets else f"{word} raised"


def show_alert(app: Notifier, event: AlertRaised, lines: BackendLines | None = None) -> None:
    """Show ``event``: as a note on its sticky backend line in ``lines`` when it is a breaker
    alert (the line is started from the alert's message if the breaker event has not drawn it
    yet), otherwise as one toast on ``app`` (literal text: never markup)."""
    name = sticky_line(event)
    if lines is not None and name is not None:
        kind: LineKind = "ok" if event.category == "recovered" else "down"
        lines.note(name, alert_note(event), text=one_line(event.message, 200), kind=kind)
        return
    title, message, severity, timeout = alert_toast(event)
    app.notify(message, title=title, severity=severity, timeout=timeout, markup=False)
