"""The one translation of HTTP and openai-SDK failures into the error taxonomy, for every endpoint.

The LLM client (``/chat/completions``, ``/models``, ``/embeddings``) and the embedding provider
(``/embeddings``) call the same functions, so the same failure gets the same error type, the
same retry decision and the same breaker effect whichever endpoint produced it::

    HTTP status                     AppError                 retried   counted by a breaker
    400, 413, 422, any other 4xx    ValidationError          no        no   (the request was wrong)
    401                             AuthenticationError      no        no   (+ where the key comes from)
    403                             AuthorizationError       no        no   (+ where the key comes from)
    404                             NotFoundError            no        no   (+ which model/URL to check)
    408                             OperationTimeoutError    yes       yes
    409                             ConflictError            yes       no
    429                             RateLimitError           yes, after Retry-After    yes
    5xx                             ExternalServiceError     yes       yes
    anything else (1xx, 3xx)        InternalError            no        yes

    failure without a response
    timeout (connect, read, write, pool)           OperationTimeoutError   yes   yes
    refused, reset, DNS, protocol error, OSError   ServiceUnavailableError yes   yes
    a body that is not JSON / not UTF-8 / garbled  ExternalServiceError    yes   yes
    anything else                                  InternalError           no    yes

"Retried" is :attr:`AppError.retryable` (the retry policy); "counted" is
:func:`runtime.resilience.classify.records_failure`; whether a failure is an outage (fallbacks,
journaling, queueing) is :func:`runtime.resilience.classify.is_outage`. The retry statuses are
openai-python's (``_base_client._should_retry``: 408, 409, 429, >= 500) and its reading of
``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date); the wait is capped by the retry
policy (``retry_after_cap``), not here.

A server's own error text is kept (it is usually the most useful part) but passed through
:func:`runtime.core.logs.redact` first: some servers echo the API key they refused.

Foreign exception classes are recognised without importing their libraries here: an
``openai``, ``httpx`` or ``httpx2`` exception can only exist once its module is loaded, so the
module is looked up in :data:`sys.modules` (the openai SDK's own ``_httpx2`` does the same).
This keeps ``import runtime.resilience`` from paying for the openai SDK (~0.35 s).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from runtime.core.errors import (
    AppError,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    ExternalServiceError,
    InternalError,
    NotFoundError,
    OperationTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from runtime.core.logs import redact

#: HTTP statuses worth another attempt besides 5xx: request timeout, conflict, rate limit
#: (openai-python's ``_should_retry``).
RETRYABLE_STATUSES = frozenset({408, 409, 429})

#: Characters of a server's or library's error text kept in a message.
MAX_DETAIL_CHARS = 200


@dataclass(frozen=True)
class Endpoint:
    """Who answered: how errors about an HTTP endpoint are named and what they suggest.

    ``service`` is the Guard (and breaker) name the errors carry (``"llm"``, ``"embeddings"``);
    ``label`` is how a message names the endpoint (``"the LLM endpoint"``);
    ``credentials_hint`` is appended to a 401/403 (where the API key comes from);
    ``not_found_hint`` is appended to a 404 (which model or URL to check).
    """

    service: str
    label: str
    credentials_hint: str = ""
    not_found_hint: str = ""


def is_retryable_status(status: int) -> bool:
    """True for the statuses another attempt may fix: 408, 409, 429 and every 5xx."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when there is no usable hint, never a negative number. ``now`` is
    wall-clock time in seconds because HTTP dates are wall-clock; it is injectable for tests.
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
    details: dict[str, Any] | None = None,
    now: Callable[[], float] = time.time,
) -> AppError:
    """The AppError for an HTTP error ``status`` (the table in the module docstring).

    ``message`` is used as is; ``retry_after`` (seconds) is parsed from ``headers`` for every
    status (a 503 may carry one too). Never raises.
    """
    retry_after = parse_retry_after(headers, now=now)
    kwargs: dict[str, Any] = {
        "service": service,
        "status_code": status,
        "retry_after": retry_after,
        "details": {"status": status, **(details or {})},
    }
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


def server_message(body: object, fallback: str) -> str:
    """The human part of an error body: OpenAI's ``{"error": {"message": ...}}``, a bare
    ``{"message": ...}``, ``{"error": "..."}``, FastAPI's ``{"detail": ...}`` (vLLM, LiteLLM),
    an HTML error page's title (a proxy's "502 Bad Gateway") or plain text; ``fallback`` when
    there is none. Not redacted (see :func:`error_for_response`)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str) and inner:
            return inner
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict) and detail[0].get("msg"):
            return str(detail[0]["msg"])
        return fallback
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body.strip():
        if _HTML_RE.match(body):
            found = _TITLE_RE.search(body)
            title = " ".join((found.group(1) or found.group(2) or "").split()) if found else ""
            return re.sub(r"<[^>]+>", "", title) or fallback
        return body
    return fallback


def error_for_response(
    status: int,
    body: object,
    headers: Mapping[str, str] | None,
    endpoint: Endpoint,
    *,
    now: Callable[[], float] = time.time,
) -> AppError:
    """The AppError for an HTTP error answer of ``endpoint``: the status table, the server's
    own words (redacted, one line, at most :data:`MAX_DETAIL_CHARS`) and the endpoint's hints.

    ``body`` is the decoded JSON body, or its text when it is not JSON.
    """
    said = _one_line(redact(server_message(body, "")))
    # The status is said once: a body that is empty or starts by repeating it ("502 Bad
    # Gateway", "HTTP 502") gave "HTTP 502: HTTP 502", the same thing twice.
    said = re.sub(rf"^(?:HTTP(?:/[\d.]+)?\s*)?{status}\b[\s:-]*", "", said)
    label = endpoint.label
    status_said = f"HTTP {status}: {said}" if said else f"HTTP {status}"
    if status in (401, 403):
        hint = f"; {endpoint.credentials_hint}" if endpoint.credentials_hint else ""
        message = f"{label} refused the credentials ({status_said}){hint}"
    elif status == 404:
        hint = f"; {endpoint.not_found_hint}" if endpoint.not_found_hint else ""
        message = f"{label} has no such model or path ({status_said}){hint}"
    elif 400 <= status < 500 and not is_retryable_status(status):
        message = f"{label} rejected the request ({status_said})"
    else:
        message = f"{label} answered {status_said}"
    return error_for_status(status, message, service=endpoint.service, headers=headers, now=now)


def translate_http(exc: BaseException, endpoint: Endpoint) -> AppError:
    """Map an exception raised while calling ``endpoint`` over HTTP to an AppError.

    Understands openai SDK errors (``APIStatusError`` and subclasses carry the response,
    ``APITimeoutError``, ``APIConnectionError``, ``APIResponseValidationError``), httpx and
    httpx2 errors, builtin timeouts and ``OSError``, and decoding errors of a garbled body.
    An AppError is returned unchanged. Callers raise the result ``from exc`` to keep the cause.
    ``asyncio.CancelledError`` must not be passed here: it always propagates untouched.
    """
    if isinstance(exc, AppError):
        return exc
    service, label = endpoint.service, endpoint.label
    openai = sys.modules.get("openai")
    if openai is not None and isinstance(exc, openai.APIStatusError):
        response = exc.response
        headers = dict(response.headers) if response is not None else None
        return error_for_response(exc.status_code, exc.body, headers, endpoint)
    if openai is not None and isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        if isinstance(exc, openai.APITimeoutError) or _is_timeout(cause):
            return OperationTimeoutError(f"{label} did not answer in time", service=service)
        return ServiceUnavailableError(f"{label} is unreachable ({_short(cause)})", service=service)
    if _is_timeout(exc):
        return OperationTimeoutError(f"{label} did not answer in time", service=service)
    if _is_malformed(exc, openai):
        return ExternalServiceError(f"{label} sent a malformed response ({_short(exc)})", service=service)
    if _is_transport(exc):
        return ServiceUnavailableError(f"{label} is unreachable ({_short(exc)})", service=service)
    return InternalError(f"{label}: call failed ({_short(exc)})", service=service)


def is_http_exception(exc: BaseException) -> bool:
    """True when ``exc`` comes from openai, httpx or httpx2 (so :func:`translate_http` knows it)."""
    for module in _loaded("openai", "httpx", "httpx2"):
        base = getattr(module, "OpenAIError", None) or getattr(module, "HTTPError", None)
        if isinstance(base, type) and isinstance(exc, base):
            return True
    stream_errors = tuple(m.StreamError for m in _loaded("httpx", "httpx2"))
    return bool(stream_errors) and isinstance(exc, stream_errors)


def _loaded(*names: str) -> list[ModuleType]:
    return [m for m in (sys.modules.get(n) for n in names) if m is not None]


def _is_timeout(exc: BaseException) -> bool:
    timeouts: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError)
    timeouts += tuple(m.TimeoutException for m in _loaded("httpx", "httpx2"))
    return isinstance(exc, timeouts)


def _is_transport(exc: BaseException) -> bool:
    kinds: tuple[type[BaseException], ...] = (ConnectionError, OSError)
    for module in _loaded("httpx", "httpx2"):
        kinds += (module.TransportError, module.StreamError)
    return isinstance(exc, kinds)


def _is_malformed(exc: BaseException, openai: ModuleType | None) -> bool:
    kinds: tuple[type[BaseException], ...] = (json.JSONDecodeError, UnicodeDecodeError)
    kinds += tuple(m.DecodingError for m in _loaded("httpx", "httpx2"))
    if openai is not None:
        kinds += (openai.APIResponseValidationError,)
    return isinstance(exc, kinds)


_HTML_RE = re.compile(r"\s*<(?:!doctype|html|head|body)", re.IGNORECASE)
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def _short(exc: BaseException) -> str:
    """``Type: text`` of an exception, one line, redacted, bounded."""
    text = _one_line(redact(str(exc)))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
