"""What the user gets when the LLM cannot answer: a cached answer, else a plain degraded notice.

The answer cache itself is the Resilience fallback cache: :class:`LLMClient` remembers every
complete answer under its prompt key, and the fallback chain serves it (``source="cache"``)
for an identical prompt. After that comes the handler installed here, which says what is
down, since when, and that the user's message is kept, naming the command that resends it in
the face the notice is shown in (:data:`RETRY_HINTS`: ``/retry`` in the TUI,
``holdfast chat --retry`` in a shell).

"Since when" is the wall-clock time of the first failure of the current outage, for
display only; the breaker decides everything with its own monotonic clock. What counts as an
outage (and so gets a degraded reply instead of the error) is the one rule every backend
shares, :func:`runtime.resilience.classify.is_outage`: an unreachable, timed-out, overloaded
(5xx, 429) or circuit-broken endpoint is an outage; a rejected request (400, 401, 404, ...)
or a bug is not, and reaches the user as the error it is.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable

from runtime.core.errors import AppError, describe
from runtime.core.logs import conversation_id_var
from runtime.resilience import Resilience
from runtime.resilience.classify import is_outage
from runtime.resilience.fallback import NO_FALLBACK, FallbackChain

SERVICE = "llm"
DEGRADED = "degraded"

_installed: weakref.WeakKeyDictionary[FallbackChain, LLMFallbacks] = weakref.WeakKeyDictionary()

#: How to send a saved message again, in the words of each face (``Runtime.face``): the TUI's
#: ``/retry`` does not exist in a shell. ``{conversation}`` is the conversation's id.
RETRY_HINTS = {
    "tui": "use /retry to send it again once the model is back",
    "cli": "run `holdfast chat --retry --conversation {conversation}` to send it again once the model is back",
    "serve": "retry the turn once the model is back",
}


class LLMFallbacks:
    """Tracks the current LLM outage and writes the degraded reply.

    ``endpoint`` is the base URL named in the notice; ``wall_clock`` gives Unix seconds for
    "since when".
    """

    def __init__(self, endpoint: str, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.endpoint = endpoint
        self._wall_clock = wall_clock
        self.down_since: float | None = None
        self.last_error: str = ""
        #: The degraded notice's last sentence (:data:`RETRY_HINTS`; ``{conversation}`` is filled in).
        self.retry_hint = RETRY_HINTS["tui"]

    @classmethod
    def install(
        cls, resilience: Resilience, *, endpoint: str, wall_clock: Callable[[], float] = time.time
    ) -> LLMFallbacks:
        """Register the degraded handler for ``llm`` once per Resilience; returns the tracker."""
        chain = resilience.fallbacks
        existing = _installed.get(chain)
        if existing is not None:
            existing.endpoint = endpoint
            return existing
        tracker = cls(endpoint, wall_clock=wall_clock)
        chain.register(SERVICE, tracker.degraded_reply, name=DEGRADED)
        _installed[chain] = tracker
        return tracker

    def note_failure(self, error: AppError) -> None:
        """Record ``error`` if it is an outage (:func:`is_outage`): the first one starts the
        outage's "since" (wall-clock seconds); caller errors leave the tracker as it is."""
        if not is_outage(error):
            return
        if self.down_since is None:
            self.down_since = self._wall_clock()
        self.last_error = describe(error)

    def note_success(self) -> None:
        """The endpoint answered: the outage, if any, is over."""
        self.down_since = None
        self.last_error = ""

    def status(self) -> dict[str, float | str | None]:
        """``{"down_since": epoch seconds or None, "last_error": one line or ""}`` for the UI."""
        return {"down_since": self.down_since, "last_error": self.last_error}

    def degraded_reply(self, error: AppError, key: str | None) -> str:
        """The fallback handler (``handler(error, prompt key)``): a notice for outages.

        Returns the notice naming the endpoint, since when (local time) and the error, or
        ``NO_FALLBACK`` for a caller error (which then reaches the user as it is).
        """
        if not is_outage(error):
            return NO_FALLBACK
        since = self.down_since if self.down_since is not None else self._wall_clock()
        when = time.strftime("%H:%M:%S", time.localtime(since))
        hint = self.retry_hint.replace("{conversation}", conversation_id_var.get() or "ID")
        return (
            f"The language model at {self.endpoint} is unavailable since {when} ({describe(error)}). "
            f"Your message is saved; {hint}."
        )
