"""Translate openai/httpx failures of an LLM call into Holdfast's error taxonomy.

Called inside the function each guarded LLM call gives its Guard, so the retry policy and
the breaker only ever see :class:`AppError`::

    connection refused / reset / DNS     -> ServiceUnavailableError   retryable
    timeout (connect or read)            -> OperationTimeoutError     retryable
    429                                  -> RateLimitError            retryable, retry_after from the server
    5xx                                  -> ExternalServiceError      retryable
    400 / 404 / 422 (and other 4xx)      -> ValidationError           not retried, not counted by a breaker
    401 / 403                            -> AuthenticationError       not retried, with an API-key hint
    malformed response or SSE            -> ExternalServiceError      retryable (a garbled reply is the server's fault)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import openai

from runtime.core.errors import (
    AppError,
    AuthenticationError,
    ExternalServiceError,
    InternalError,
    OperationTimeoutError,
    ServiceUnavailableError,
    ValidationError,
)
from runtime.core.logs import redact
from runtime.resilience.classify import error_for_status

SERVICE = "llm"

#: Statuses the issue calls "the request was wrong": never retried, never held against the endpoint.
VALIDATION_STATUSES = frozenset({400, 404, 413, 422})
AUTH_STATUSES = frozenset({401, 403})


def api_key_hint(api_key_env: str) -> str:
    return f"check the API key (set ${api_key_env} or [llm].api_key) and that it may use this model"


def _server_message(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return fallback


def error_for_response(
    status: int,
    body: Any,
    headers: Mapping[str, str] | None,
    *,
    api_key_env: str = "OPENAI_API_KEY",
    now: Callable[[], float] = time.time,
) -> AppError:
    """The AppError for an HTTP error answer of an LLM endpoint.

    The server's own words are kept, redacted: some servers echo the key they refused.
    """
    message = redact(_server_message(body, f"HTTP {status}"))
    if status in AUTH_STATUSES:
        return AuthenticationError(
            f"the LLM endpoint refused the credentials (HTTP {status}: {message}); {api_key_hint(api_key_env)}",
            service=SERVICE,
            status_code=status,
            details={"status": status},
        )
    if status in VALIDATION_STATUSES or (400 <= status < 500 and status not in (408, 409, 429)):
        hint = "; check [llm].model and [llm].base_url" if status == 404 else ""
        return ValidationError(
            f"the LLM endpoint rejected the request (HTTP {status}: {message}){hint}",
            service=SERVICE,
            status_code=status,
            details={"status": status},
        )
    return error_for_status(
        status, f"the LLM endpoint answered HTTP {status}: {message}", service=SERVICE, headers=headers, now=now
    )


def translate(exc: BaseException, *, api_key_env: str = "OPENAI_API_KEY") -> AppError:
    """Map an exception raised by the openai SDK or httpx during an LLM call to an AppError."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        headers = dict(exc.response.headers) if exc.response is not None else None
        return error_for_response(exc.status_code, exc.body, headers, api_key_env=api_key_env)
    if isinstance(exc, openai.APITimeoutError) or isinstance(exc, httpx.TimeoutException):
        return OperationTimeoutError("the LLM endpoint did not answer in time", service=SERVICE)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return ServiceUnavailableError(f"the LLM endpoint is unreachable ({_short(cause)})", service=SERVICE)
    if isinstance(exc, (httpx.TransportError, httpx.StreamError, ConnectionError)):
        return ServiceUnavailableError(f"the LLM connection failed ({_short(exc)})", service=SERVICE)
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, UnicodeDecodeError)):
        return ExternalServiceError(f"the LLM endpoint sent a malformed response ({_short(exc)})", service=SERVICE)
    if isinstance(exc, TimeoutError):
        return OperationTimeoutError("the LLM endpoint did not answer in time", service=SERVICE)
    if isinstance(exc, OSError):
        return ServiceUnavailableError(f"the LLM endpoint is unreachable ({_short(exc)})", service=SERVICE)
    return InternalError(f"LLM call failed ({_short(exc)})", service=SERVICE)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
