"""Retry policy decisions and error classification, as pure functions."""

from __future__ import annotations

import email.utils

import pytest

from runtime.core.errors import (
    AuthenticationError,
    ConflictError,
    ExternalServiceError,
    NotFoundError,
    OperationTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from runtime.resilience import RetryPolicy, error_for_status, parse_retry_after, records_failure, translate
from runtime.resilience.classify import is_retryable_status
from tests.support.resilience import settings

DOWN = ServiceUnavailableError("down")


def schedule(policy: RetryPolicy, error: Exception = DOWN, now: float = 0.0) -> list[float | None]:
    state = policy.new_state(0.0)
    delays: list[float | None] = []
    while True:
        decision = policy.decide(state, error, now)  # type: ignore[arg-type]
        delays.append(decision.delay)
        if decision.delay is None:
            return delays
        state.attempt_number += 1


def test_exponential_schedule_without_jitter_stops_after_max_attempts() -> None:
    policy = RetryPolicy(
        settings(max_attempts=5, initial_delay=2.0, multiplier=2.0, jitter=False, max_delay=60.0, deadline=1000.0)
    )
    assert schedule(policy) == [2.0, 4.0, 8.0, 16.0, None]  # 1 call + 4 retries


def test_delays_are_capped_at_max_delay() -> None:
    policy = RetryPolicy(settings(max_attempts=10, initial_delay=1.0, jitter=False, max_delay=5.0, deadline=1000.0))
    assert max(d for d in schedule(policy) if d is not None) == 5.0


def test_full_jitter_stays_within_the_exponential_envelope() -> None:
    policy = RetryPolicy(settings(max_attempts=4, initial_delay=1.0, jitter=True, deadline=1000.0))
    for _ in range(200):
        delays = schedule(policy)
        assert delays[-1] is None and len(delays) == 4
        for n, delay in enumerate(delays[:-1]):
            assert delay is not None and 0.0 <= delay <= 2.0**n
    # Full jitter means the waits actually vary.
    assert len({tuple(schedule(policy)) for _ in range(20)}) > 1


def test_retry_after_is_a_lower_bound_on_the_wait() -> None:
    policy = RetryPolicy(
        settings(max_attempts=3, initial_delay=0.5, jitter=False, retry_after_cap=60.0, deadline=1000.0)
    )
    assert schedule(policy, RateLimitError("slow down", retry_after=7.5)) == [7.5, 7.5, None]
    assert schedule(policy, RateLimitError("slow down", retry_after=0.1)) == [0.5, 1.0, None]


def test_retry_after_above_the_cap_means_no_retry() -> None:
    policy = RetryPolicy(settings(max_attempts=5, retry_after_cap=30.0))
    decision = policy.decide(policy.new_state(0.0), RateLimitError("later", retry_after=31.0), 0.0)
    assert decision.delay is None and "cap" in decision.reason


def test_no_retry_whose_wait_would_pass_the_deadline() -> None:
    policy = RetryPolicy(settings(max_attempts=10, initial_delay=1.0, jitter=False, deadline=10.0))
    state = policy.new_state(100.0)
    assert policy.decide(state, DOWN, 108.0).delay == 1.0
    decision = policy.decide(state, DOWN, 109.5)
    assert decision.delay is None and "deadline" in decision.reason


@pytest.mark.parametrize("error", [ValidationError("bad"), AuthenticationError("key"), NotFoundError("gone")])
def test_caller_errors_are_never_retried(error: Exception) -> None:
    policy = RetryPolicy(settings(max_attempts=5))
    assert policy.decide(policy.new_state(0.0), error, 0.0).delay is None  # type: ignore[arg-type]


def test_retry_state_is_per_call() -> None:
    policy = RetryPolicy(settings(max_attempts=2, jitter=False))
    a, b = policy.new_state(0.0), policy.new_state(0.0)
    assert policy.decide(a, DOWN, 0.0).delay is not None
    a.attempt_number += 1
    assert policy.decide(a, DOWN, 0.0).delay is None
    assert policy.decide(b, DOWN, 0.0).delay is not None  # b is unaffected by a's attempts


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    date = email.utils.formatdate(1_000_120.0, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=lambda: 1_000_000.0) == pytest.approx(120.0)
    assert parse_retry_after({"Retry-After": email.utils.formatdate(10.0, usegmt=True)}, now=lambda: 99.0) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "2"}) == 2.0
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (408, OperationTimeoutError, True),
        (409, ConflictError, True),
        (429, RateLimitError, True),
        (500, ExternalServiceError, True),
        (503, ExternalServiceError, True),
        (400, ValidationError, False),
        (401, AuthenticationError, False),
        (404, NotFoundError, False),
        (422, ValidationError, False),
    ],
)
def test_error_for_status(status: int, kind: type, retryable: bool) -> None:
    error = error_for_status(status, "x", service="llm", headers={"retry-after": "2"})
    assert type(error) is kind
    assert error.retryable is retryable is is_retryable_status(status)
    assert error.retry_after == 2.0 and error.status_code == status


def test_translate_maps_foreign_errors_at_the_boundary() -> None:
    assert isinstance(translate(TimeoutError(), "redis"), OperationTimeoutError)
    refused = translate(ConnectionRefusedError("refused"), "redis")
    assert isinstance(refused, ServiceUnavailableError) and refused.retryable
    assert isinstance(translate(OSError("no route"), "redis"), ServiceUnavailableError)
    bug = translate(KeyError("x"), "tool:calc")
    assert bug.error_type.value == "internal_error" and not bug.retryable
    assert records_failure(bug)
    assert not records_failure(ValidationError("bad"))
