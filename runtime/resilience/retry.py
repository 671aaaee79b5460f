"""Retry policy: when to try a failed call again, and how long to wait first.

The schedule is built from tenacity's strategy objects (``wait_random_exponential`` for full
jitter, ``wait_exponential`` without; ``stop_after_attempt``), evaluated as pure functions
on a per-call :class:`tenacity.RetryCallState`, so no attempt counter is shared between
concurrent callers. The guard only consults this after a first failure: a successful call
never touches tenacity (its ``@retry`` costs ~18 us per call here).

On top of the schedule:

* only errors with ``retryable=True`` are retried (see :mod:`runtime.resilience.classify`);
* a server's ``retry_after`` hint is a lower bound on the wait; a hint above
  ``retry_after_cap`` means "give up now" rather than keep the user waiting;
* ``deadline`` is the total budget of one logical call: a retry whose wait would end past it
  is not attempted.
"""

from __future__ import annotations

from dataclasses import dataclass

import tenacity
from tenacity import RetryCallState

from runtime.config import ServiceResilience
from runtime.core.errors import AppError


@dataclass(frozen=True)
class RetryDecision:
    """``delay`` (seconds) before the next attempt, or None when the call should not be retried; ``reason`` says why."""

    delay: float | None
    reason: str = ""


class RetryPolicy:
    """One service's retry schedule; stateless, shared by all callers of that service.

    From ``settings``: ``max_attempts`` (the first call included), ``initial_delay``,
    ``multiplier`` and ``max_delay`` (seconds) for exponential backoff with full jitter when
    ``jitter`` is on, ``retry_after_cap`` and ``deadline`` (seconds).
    """

    def __init__(self, settings: ServiceResilience) -> None:
        self.settings = settings
        self.max_attempts = settings.max_attempts
        self.deadline = settings.deadline
        self.retry_after_cap = settings.retry_after_cap
        wait_cls = tenacity.wait_random_exponential if settings.jitter else tenacity.wait_exponential
        # attempt n waits up to initial * multiplier**(n-1), capped at max_delay.
        self.wait = wait_cls(multiplier=settings.initial_delay, exp_base=settings.multiplier, max=settings.max_delay)
        self.stop = tenacity.stop_after_attempt(settings.max_attempts)

    def new_state(self, started_at: float) -> RetryCallState:
        """Fresh per-call state; ``started_at`` is on the guard's clock."""
        # tenacity's stub wants the Retrying object; the strategies used here never read it.
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.start_time = started_at
        return state

    def decide(self, state: RetryCallState, error: AppError, now: float) -> RetryDecision:
        """After failed attempt number ``state.attempt_number``: wait how long, or stop?

        ``now`` is on the same clock as ``started_at``. A ``retry_after`` hint (a server's
        Retry-After, RFC 9110 section 10.2.3, or a breaker's) is a lower bound on the delay.
        """
        if not error.retryable:
            return RetryDecision(None, "not retryable")
        state.outcome_timestamp = now
        if self.stop(state):
            return RetryDecision(None, f"{state.attempt_number} attempts made")
        delay = float(self.wait(state))
        hint = error.retry_after
        if hint is not None:
            if hint > self.retry_after_cap:
                return RetryDecision(None, f"server asked for {hint:.1f}s > cap {self.retry_after_cap:g}s")
            delay = max(delay, hint)
        elapsed = now - state.start_time
        if elapsed + delay >= self.deadline:
            return RetryDecision(None, f"deadline {self.deadline:g}s would pass")
        state.upcoming_sleep = delay
        return RetryDecision(delay)

    def remaining(self, state: RetryCallState, now: float) -> float:
        """Seconds left of the call's ``deadline`` at ``now`` (negative once it has passed)."""
        return self.deadline - (now - state.start_time)

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt (``max_attempts - 1``)."""
        return self.max_attempts - 1
