"""How the resilience layer classifies a failure: translate, retry or not, count or not.

Everything that decides "what kind of failure is this" lives here, as small named functions
and constants (the openai-python ``_base_client`` style), so the guard, the retry policy and
the breaker agree:

* :func:`translate` maps a foreign exception escaping a guarded call to an :class:`AppError`.
* :func:`records_failure` says whether an error counts against a circuit breaker.
* :func:`error_for_status` builds the right :class:`AppError` for an HTTP status, with the
  ``Retry-After`` hint parsed by :func:`parse_retry_after`, for clients to raise.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Mapping

from runtime.core.errors import (
    AppError,
    AuthenticationError,
    AuthorizationError,
    BulkheadFullError,
    CircuitOpenError,
    ConflictError,
    ErrorType,
    ExternalServiceError,
    InternalError,
    NotFoundError,
    OperationTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)

#: HTTP statuses worth another attempt: request timeout, conflict, rate limit, server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

#: Error types caused by the caller; they say nothing about the backend's health, so a
#: breaker ignores them (resilience4j's ``ignoreExceptions``).
CALLER_ERROR_TYPES = frozenset(
    {
        ErrorType.VALIDATION,
        ErrorType.AUTHENTICATION,
        ErrorType.AUTHORIZATION,
        ErrorType.NOT_FOUND,
        ErrorType.CONFLICT,
        ErrorType.CIRCUIT_OPEN,
    }
)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def translate(exc: BaseException, service: str, *, timed_out: bool = False) -> AppError:
    """The one mapping of a non-AppError escaping a guarded call to an AppError.

    * the guard's own timeout, or any ``TimeoutError`` -> :class:`OperationTimeoutError` (retryable)
    * builtin ``ConnectionError`` / ``OSError`` -> :class:`ServiceUnavailableError` (retryable)
    * anything else -> :class:`InternalError` (not retried, but counted by the breaker:
      a backend that makes our code crash is not healthy)

    ``asyncio.CancelledError`` is never passed here: it always propagates untouched.
    Callers raise the result ``from exc`` so the cause is kept.
    """
    if isinstance(exc, AppError):
        return exc
    if timed_out or isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return OperationTimeoutError(f"{service} did not answer in time", service=service)
    if isinstance(exc, (ConnectionError, OSError)):
        return ServiceUnavailableError(f"{service} is unreachable ({type(exc).__name__}: {exc})", service=service)
    return InternalError(f"{service} call failed ({type(exc).__name__}: {exc})", service=service)


def records_failure(exc: BaseException) -> bool:
    """True when ``exc`` counts as a backend failure for a circuit breaker.

    Caller errors (4xx-like) are ignored, as are our own rejections (an open circuit, a
    full bulkhead): counting them would let a breaker trip itself.
    """
    if isinstance(exc, AppError):
        if isinstance(exc, (BulkheadFullError, CircuitOpenError)):
            return False
        return exc.error_type not in CALLER_ERROR_TYPES
    return not isinstance(exc, asyncio.CancelledError)


def parse_retry_after(headers: Mapping[str, str] | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when there is no usable hint. ``now`` is wall-clock time because HTTP
    dates are wall-clock; it is injectable for tests.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now()
    return max(seconds, 0.0)


def error_for_status(
    status: int,
    message: str,
    *,
    service: str | None = None,
    headers: Mapping[str, str] | None = None,
    now: Callable[[], float] = time.time,
) -> AppError:
    """The AppError a client should raise for an HTTP error status (with Retry-After parsed)."""
    retry_after = parse_retry_after(headers, now=now)
    kwargs = {"service": service, "status_code": status, "retry_after": retry_after}
    if status == 429:
        return RateLimitError(message, **kwargs)
    if status == 408:
        return OperationTimeoutError(message, **kwargs)
    if status == 409:
        return ConflictError(message, **kwargs)
    if status == 401:
        return AuthenticationError(message, **kwargs)
    if status == 403:
        return AuthorizationError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status >= 500:
        return ExternalServiceError(message, **kwargs)
    if 400 <= status < 500:
        return ValidationError(message, **kwargs)
    return InternalError(message, **kwargs)
