"""What the slash-command handlers and the turn view need from the app: :class:`ChatSurface`.

:class:`app.chat_app.HoldfastApp` implements it. :mod:`app.command_handlers` and
:mod:`app.turn_view` depend on this protocol, never on the app module, so the app imports them
and nothing imports the app back (no import cycle inside ``app/``, checked by import-linter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from app.widgets.chat_log import ChatLog
    from app.widgets.context_panel import ContextPanel
    from app.widgets.header_bar import HeaderBar
    from app.widgets.health_panel import HealthPanel
    from app.widgets.user_message import UserMessage
    from runtime.config import Config
    from runtime.host.facade import RuntimeFacade


class ChatSurface(Protocol):
    """The app as its command handlers and turn view see it: the runtime facade, the open
    conversation, the widgets they write to and the actions they trigger."""

    #: The conversation on screen (None before the first one is open).
    conversation_id: str | None

    @property
    def config(self) -> Config:
        """The loaded configuration (data dir for exports, UI settings)."""
        ...

    @property
    def rt(self) -> RuntimeFacade | None:
        """The runtime (None until the boot worker has built it)."""
        ...

    @property
    def chat_log(self) -> ChatLog: ...

    @property
    def context_panel(self) -> ContextPanel: ...

    @property
    def health_panel(self) -> HealthPanel: ...

    @property
    def header(self) -> HeaderBar: ...

    async def start_new_conversation(self) -> None: ...

    async def open_conversation(self, conversation_id: str) -> None: ...

    async def edit_message(self, message: str | int | None = None) -> bool:
        """Put a user message (id, seq, or None: the last) in the composer; sending it branches."""
        ...

    def cancel_edit(self) -> bool:
        """Drop a pending /edit; False when there was none."""
        ...

    async def send(self, text: str) -> None:
        """Show ``text`` as the user's message and run its turn (queued behind a running one)."""
        ...

    async def start_turn(self, text: str | None, *, retry: bool = False, bubble: UserMessage | None = None) -> None:
        """Run a turn for ``text`` (or resend the last message with ``retry``) in the open conversation."""
        ...

    async def pick_model(self) -> None:
        """Let the user pick the open conversation's model from the endpoint's list."""
        ...

    async def use_model(self, name: str) -> None:
        """Store ``name`` as the open conversation's model and show it in the header."""
        ...

    def refresh_breakers(self) -> None:
        """Redraw the Breakers panel from fresh in-memory snapshots."""
        ...

    def refresh_backend_pids(self) -> None: ...

    async def check_health_now(self) -> None:
        """Run every health check and show the result in the Health panel."""
        ...

    def schedule_recovery_probe(self, service: str) -> None: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...

    def copy_to_clipboard(self, text: str) -> None: ...
