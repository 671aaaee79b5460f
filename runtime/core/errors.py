"""Holdfast's error taxonomy: every failure the runtime raises is an :class:`AppError`.

Foreign exceptions (redis, httpx, openai, lancedb, OS errors) are translated at the
boundary that caught them with ``raise SomeAppError(...) from exc`` so the cause is kept
and everything above the boundary deals with one tree::

    AppError (ApplicationError)                 type                retryable
    ├── ValidationError                         validation          no
    │   └── ConfigError                         validation          no
    ├── AuthenticationError                     authentication      no
    ├── AuthorizationError                      authorization       no
    ├── NotFoundError                           not_found           no
    ├── RateLimitError                          rate_limit          yes (honours retry_after)
    ├── ExternalServiceError                    external_service    yes
    │   ├── ServiceUnavailableError             external_service    yes
    │   └── BulkheadFullError                   external_service    yes
    ├── InternalError                           internal            no
    ├── OperationTimeoutError                   timeout             yes
    ├── ConflictError                           conflict            yes
    └── CircuitOpenError                        circuit_open        no (fail fast)

Every error carries a one-line, user-facing message (:meth:`AppError.user_message`);
``details`` holds structured context for logs and the UI, never secrets.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from runtime.core.safe_text import mask_url_credentials


# Not StrEnum: that would change str() and f-strings from "ErrorType.TIMEOUT" to "timeout_error".
class ErrorType(str, Enum):  # noqa: UP042
    """Classification of a failure; the values are the spec's wire names."""

    VALIDATION = "validation_error"
    AUTHENTICATION = "authentication_error"
    AUTHORIZATION = "authorization_error"
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit_exceeded"
    EXTERNAL_SERVICE = "external_service_error"
    INTERNAL = "internal_error"
    TIMEOUT = "timeout_error"
    CONFLICT = "conflict_error"
    CIRCUIT_OPEN = "circuit_open"


class AppError(Exception):
    """Base of every error Holdfast raises.

    ``retryable`` tells the retry policy whether another attempt may succeed;
    ``retry_after`` (seconds) is the server's or breaker's hint of when to try again
    (a server's comes from its Retry-After header, RFC 9110 section 10.2.3).

    Args:
        message: one line for people; ``user_message`` collapses its whitespace.
        error_type: overrides the class's ``default_type``.
        details: structured context for logs and the UI (copied; never secrets).
        retryable: overrides the class's ``default_retryable``.
        status_code: the HTTP status this error maps to; overrides ``default_status``.
        retry_after: seconds to wait before another attempt, when known.
        service: the service that failed (``llm``, ``redis``, ``tool:<name>``), when known.
    """

    default_type: ErrorType = ErrorType.INTERNAL
    default_retryable: bool = False
    default_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        error_type: ErrorType | None = None,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        service: str | None = None,
    ) -> None:
        # A URL with credentials must never reach a user, a log or a stored notice through an error.
        message = mask_url_credentials(message)
        super().__init__(message)
        self.message = message
        self.error_type = error_type or self.default_type
        self.details: dict[str, Any] = dict(details or {})
        self.retryable = self.default_retryable if retryable is None else retryable
        self.status_code = self.default_status if status_code is None else status_code
        self.retry_after = retry_after
        self.service = service

    @property
    def type(self) -> ErrorType:
        """The spec's name for :attr:`error_type`."""
        return self.error_type

    def user_message(self) -> str:
        """One line a person can read: what failed and, where known, which service."""
        text = " ".join(self.message.split())
        prefix = f"{self.service}: " if self.service and not text.startswith(self.service) else ""
        return f"{prefix}{text}"

    def to_dict(self) -> dict[str, Any]:
        """The spec's error body: ``type`` (wire name), ``message``, ``details``, ``retryable``,
        ``status_code``, ``retry_after`` (seconds or None) and ``service``."""
        return {
            "type": self.error_type.value,
            "message": self.user_message(),
            "details": self.details,
            "retryable": self.retryable,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
            "service": self.service,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, type={self.error_type.value})"


#: The spec's name for the base class.
ApplicationError = AppError


class ValidationError(AppError):
    """The caller's input is invalid (HTTP 400); retrying the same input will not help."""

    default_type = ErrorType.VALIDATION
    default_status = 400


class ConfigError(ValidationError):
    """Invalid configuration; the message is the whole one-line explanation."""


class AuthenticationError(AppError):
    """Credentials are missing or were refused (HTTP 401), e.g. a bad API key."""

    default_type = ErrorType.AUTHENTICATION
    default_status = 401


class AuthorizationError(AppError):
    """Authenticated, but not allowed to do this (HTTP 403)."""

    default_type = ErrorType.AUTHORIZATION
    default_status = 403


class NotFoundError(AppError):
    """The named thing (conversation, model, memory, tool) does not exist (HTTP 404)."""

    default_type = ErrorType.NOT_FOUND
    default_status = 404


class RateLimitError(AppError):
    """The backend asked us to slow down (HTTP 429); retryable, honouring ``retry_after`` seconds."""

    default_type = ErrorType.RATE_LIMIT
    default_retryable = True
    default_status = 429


class ExternalServiceError(AppError):
    """A backend failed on its side (5xx, a broken answer); retryable, counted by its breaker."""

    default_type = ErrorType.EXTERNAL_SERVICE
    default_retryable = True
    default_status = 503


class ServiceUnavailableError(ExternalServiceError):
    """The backend could not be reached at all (connection refused, DNS, socket closed)."""


class WritesRefusedError(ServiceUnavailableError):
    """The backend answers but refuses writes now (Redis OOM under ``maxmemory``, a READONLY
    replica, MISCONF after a failed disk write, NOREPLICAS): an outage of writes only.

    It is an outage (callers that catch :class:`ServiceUnavailableError` journal or queue the
    write), but reads still work, so a circuit breaker does not count it
    (:func:`runtime.resilience.classify.records_failure`) and it is not retried within one call
    (the conversation store journals the write and replays it when writes are accepted again).
    """

    default_retryable = False


class BulkheadFullError(ExternalServiceError):
    """Too many concurrent calls to one service; the caller waited its bounded time."""

    default_status = 503


class InternalError(AppError):
    """A bug or broken invariant in Holdfast itself (HTTP 500); not retryable."""

    default_type = ErrorType.INTERNAL


class OperationTimeoutError(AppError):
    """An operation overran its timeout (HTTP 504); retryable, counted by the breaker."""

    default_type = ErrorType.TIMEOUT
    default_retryable = True
    default_status = 504


class ConflictError(AppError):
    """A concurrent change won (HTTP 409, a lock someone else holds, a conflicting write); retryable."""

    default_type = ErrorType.CONFLICT
    default_retryable = True
    default_status = 409


class CircuitOpenError(AppError):
    """Raised without any I/O while a breaker is open (or half-open and full of probes).

    ``name`` is the breaker's (and service's) name; ``retry_after`` the seconds until the next
    probe when known; ``last_error`` the failure that opened it, shown in ``details``.
    """

    default_type = ErrorType.CIRCUIT_OPEN
    default_status = 503

    def __init__(self, name: str, retry_after: float | None = None, *, last_error: str | None = None) -> None:
        wait = f"; next probe in {retry_after:.1f}s" if retry_after and retry_after > 0 else ""
        super().__init__(
            f"{name} is unavailable (circuit open{wait})",
            retry_after=retry_after,
            service=name,
            details={"breaker": name, "last_error": last_error},
        )
        self.name = name


def describe(exc: BaseException) -> str:
    """A one-line description of any exception, for notices and logs."""
    if isinstance(exc, AppError):
        return exc.user_message()
    text = mask_url_credentials(" ".join(str(exc).split()))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
