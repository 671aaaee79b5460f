"""The one classifier of failures: what an error is, whether it is an outage, whether it counts.

Every path that has to decide "what kind of failure is this" asks here, so the guard, the
retry policy, the breaker, the LLM fallbacks, the conversation journal and the memory write
queue agree (they had drifted apart when each kept its own list):

* :func:`translate` maps a foreign exception to an :class:`AppError`: redis-py errors by
  :func:`translate_redis`, openai/httpx errors by
  :func:`runtime.resilience.http_errors.translate_http`, builtin timeouts and ``OSError``
  here. Clients that know their endpoint call those two directly for better messages.
* :func:`is_outage` says whether an error means "the backend cannot serve this now, the same
  request may succeed later" (answer with a fallback, journal or queue it, retry later) or
  "the request is wrong or our code is" (raise it; waiting will not help).
* :func:`records_failure` says whether an error counts against a circuit breaker.
* :func:`error_for_status` / :func:`parse_retry_after` (from :mod:`.http_errors`) build the
  AppError for an HTTP status.

The outage rule, by :class:`ErrorType` (:data:`OUTAGE_TYPES`)::

    type               examples                                             outage   breaker counts
    external_service   5xx, refused/reset, Redis LOADING/BUSY/MASTERDOWN    yes      yes (a full bulkhead: no)
                       Redis OOM/READONLY/MISCONF/NOREPLICAS (writes only)  yes      no (reads still work)
    timeout            connect/read timeout, HTTP 408                       yes      yes
    rate_limit         HTTP 429                                             yes      yes
    circuit_open       a breaker rejecting without I/O                      yes      no (our own rejection)
    validation         HTTP 400/413/422, Redis WRONGTYPE, a bad user id     no       no
    authentication     HTTP 401, Redis NOAUTH/WRONGPASS                     no       no
    authorization      HTTP 403, Redis NOPERM                               no       no
    not_found          HTTP 404                                             no       no
    conflict           HTTP 409                                             no       no
    internal           a bug, an unknown Redis reply, an unexpected status  no       yes

Sources: the caller-error types are resilience4j's ``ignoreExceptions`` idea (they say nothing
about the backend's health); the retryable HTTP statuses are openai-python's; "internal is not
an outage but counts" because waiting does not fix a bug, while a backend that keeps making our
code fail is not healthy either.

Redis is classified by exception class and reply code, never by message prefix: redis-py strips
the code of the replies it knows (``OOM``, ``READONLY``, ``LOADING``, ...) from the message and
raises a class for it (``OutOfMemoryError``, ``ReadOnlyError``, ``BusyLoadingError``), keeps
the code of the ones it does not (``MISCONF ...``, ``BUSY ...``), and a Lua script that hits one
fails with ``Error running script (...): @user_script:1: -OOM ...`` (Redis 6) or with the
code itself (Redis 7). A Redis that refuses writes (:data:`REDIS_UNAVAILABLE_REPLIES`) is an
outage of writes: journal and replay when they are accepted again, never a permanent error.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping

from runtime.core.errors import (
    AppError,
    AuthenticationError,
    AuthorizationError,
    BulkheadFullError,
    CircuitOpenError,
    ErrorType,
    InternalError,
    OperationTimeoutError,
    ServiceUnavailableError,
    ValidationError,
    WritesRefusedError,
)
from runtime.resilience.http_errors import (
    RETRYABLE_STATUSES,
    Endpoint,
    error_for_status,
    is_http_exception,
    is_retryable_status,
    parse_retry_after,
    translate_http,
)

__all__ = [
    "CALLER_ERROR_TYPES",
    "OUTAGE_TYPES",
    "REDIS_UNAVAILABLE_REPLIES",
    "REDIS_WRITE_REFUSALS",
    "RETRYABLE_STATUSES",
    "error_for_status",
    "is_outage",
    "is_retryable_status",
    "parse_retry_after",
    "records_failure",
    "redis_reply_code",
    "translate",
    "translate_redis",
]

#: Error types that mean "the backend cannot serve this now; the same request may succeed later".
OUTAGE_TYPES = frozenset({ErrorType.EXTERNAL_SERVICE, ErrorType.TIMEOUT, ErrorType.RATE_LIMIT, ErrorType.CIRCUIT_OPEN})

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

#: Redis reply codes that mean "this server cannot serve (or take writes) right now; the same
#: command may succeed later", with the words a user reads. Sources: the Redis documentation of
#: ``maxmemory`` (OOM), replication (READONLY, MASTERDOWN, NOREPLICAS with ``min-replicas-to-write``),
#: persistence (MISCONF with ``stop-writes-on-bgsave-error``, or after a failed AOF write, e.g. on a
#: full disk), startup (LOADING), scripting (BUSY) and cluster (TRYAGAIN, CLUSTERDOWN).
REDIS_UNAVAILABLE_REPLIES: Mapping[str, str] = {
    "OOM": "is out of memory (maxmemory reached) and refuses writes",
    "READONLY": "is a read-only replica and refuses writes",
    "MISCONF": "refuses writes because it cannot write to its disk (a failed snapshot or AOF write)",
    "LOADING": "is still loading its dataset",
    "BUSY": "is busy running a script",
    "MASTERDOWN": "lost the link to its primary",
    "NOREPLICAS": "has too few replicas to accept writes",
    "TRYAGAIN": "is moving the key's slot",
    "CLUSTERDOWN": "says the cluster is down",
}

#: The replies of a Redis that still serves reads but refuses writes: OOM (``maxmemory`` under
#: ``noeviction``), READONLY (a replica), MISCONF (``stop-writes-on-bgsave-error`` or a failed AOF
#: write) and NOREPLICAS (``min-replicas-to-write``). They translate to :class:`WritesRefusedError`,
#: which the breaker does not count: "Redis is down" would cut reads Redis would serve. LOADING,
#: MASTERDOWN, BUSY, ... refuse reads too and stay plain outages.
REDIS_WRITE_REFUSALS = frozenset({"OOM", "READONLY", "MISCONF", "NOREPLICAS"})

#: redis-py exception classes that stand for a reply code whose prefix redis-py stripped
#: (``redis._parsers.base.BaseParser.EXCEPTION_CLASSES``); subclasses before their bases.
_REDIS_CODE_OF_CLASS = (
    ("OutOfMemoryError", "OOM"),
    ("ReadOnlyError", "READONLY"),
    ("BusyLoadingError", "LOADING"),
    ("MasterDownError", "MASTERDOWN"),
    ("ClusterDownError", "CLUSTERDOWN"),
    ("TryAgainError", "TRYAGAIN"),
    ("NoPermissionError", "NOPERM"),
    ("NoScriptError", "NOSCRIPT"),
    ("ExecAbortError", "EXECABORT"),
)
_CODE_RE = re.compile(r"[A-Z][A-Z0-9_]+")
#: The error a Lua script hit, inside Redis 6's "Error running script ...: @user_script: 1: -OOM ...".
_SCRIPT_INNER_CODE_RE = re.compile(r"(?:^|: )-([A-Z][A-Z0-9_]+) ")
_REDIS_SERVICE = "redis"


def translate(exc: BaseException, service: str, *, timed_out: bool = False) -> AppError:
    """The AppError for any exception escaping a call to ``service`` (returned, not raised).

    * an AppError -> itself
    * the guard's own timeout (``timed_out``) or any ``TimeoutError`` -> :class:`OperationTimeoutError`
    * a redis-py error -> :func:`translate_redis`
    * an openai / httpx / httpx2 error -> :func:`runtime.resilience.http_errors.translate_http`
    * builtin ``ConnectionError`` / ``OSError`` -> :class:`ServiceUnavailableError` (retryable)
    * anything else -> :class:`InternalError` (not retried, not an outage, but counted by the
      breaker: a backend that makes our code crash is not healthy)

    ``asyncio.CancelledError`` is never passed here: it always propagates untouched.
    Callers raise the result ``from exc`` so the cause is kept.
    """
    if isinstance(exc, AppError):
        return exc
    if timed_out or isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return OperationTimeoutError(f"{service} did not answer in time", service=service)
    if _is_redis_exception(exc):
        return translate_redis(exc, service=service)
    if is_http_exception(exc):
        return translate_http(exc, Endpoint(service=service, label=service))
    if isinstance(exc, (ConnectionError, OSError)):
        return ServiceUnavailableError(f"{service} is unreachable ({_short(exc)})", service=service)
    return InternalError(f"{service} call failed ({_short(exc)})", service=service)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` means the backend cannot serve the request now and may later.

    This is the one rule behind every degraded mode: the LLM answers from its fallbacks, the
    conversation store journals the write, the memory store queues it, all only for an
    outage; any other error is raised to the caller (the request or our code is wrong, and
    waiting will not fix it). An AppError is judged by its :attr:`~AppError.error_type`
    (:data:`OUTAGE_TYPES`); a foreign exception by what :func:`translate` makes of it.
    Cancellation (and any other ``BaseException`` that is not an ``Exception``) is never an outage.
    """
    if not isinstance(exc, Exception):
        return False
    error = exc if isinstance(exc, AppError) else translate(exc, "backend")
    return error.error_type in OUTAGE_TYPES


def records_failure(exc: BaseException) -> bool:
    """True when ``exc`` counts as a backend failure for a circuit breaker.

    Caller errors (:data:`CALLER_ERROR_TYPES`) are ignored, as are our own rejections (an
    open circuit, a full bulkhead): counting them would let a breaker trip itself. So is a
    :class:`WritesRefusedError` (Redis OOM/READONLY/MISCONF/NOREPLICAS): the backend still serves
    reads, and an open breaker would cut them (the writes are journaled instead). A foreign
    exception counts unless it is a cancellation.
    """
    if isinstance(exc, AppError):
        if isinstance(exc, (BulkheadFullError, CircuitOpenError, WritesRefusedError)):
            return False
        return exc.error_type not in CALLER_ERROR_TYPES
    return not isinstance(exc, asyncio.CancelledError)


# ---------------------------------------------------------------- Redis


def redis_reply_code(exc: BaseException) -> str | None:
    """The Redis reply code behind a redis-py exception (``"OOM"``, ``"MISCONF"``, ...), or None.

    Looked up, in order: the exception class redis-py chose for a code it strips
    (``OutOfMemoryError`` -> ``OOM``); the ``status_code`` redis-py >= 7 records; the first word
    of the message when it is a code (codes redis-py does not know keep their prefix:
    ``MISCONF ...``, ``BUSY ...``, ``WRONGTYPE ...``); and for a failed Lua script, the code of
    the error the script hit (Redis 6: ``Error running script ...: -OOM ...``).
    """
    exceptions = sys.modules.get("redis.exceptions")
    code: str | None = None
    if exceptions is not None:
        for name, known in _REDIS_CODE_OF_CLASS:
            cls = getattr(exceptions, name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return known
    status = getattr(exc, "status_code", None)
    if isinstance(status, str) and _CODE_RE.fullmatch(status):
        code = status
    text = str(exc)
    if code is None:
        first = text.split(" ", 1)[0]
        if _CODE_RE.fullmatch(first):
            code = first
    if code in (None, "ERR") and "script" in text.lower():
        inner = _SCRIPT_INNER_CODE_RE.search(text)
        if inner:
            code = inner.group(1)
    return code


def translate_redis(exc: BaseException, operation: str = "", *, service: str = _REDIS_SERVICE) -> AppError:
    """The AppError for a redis-py (or socket) exception; the caller chains the cause.

    ``operation`` names the command for the message (``"SET"``, ``"append message"``).

    * a reply in :data:`REDIS_UNAVAILABLE_REPLIES` (OOM, READONLY, MISCONF, LOADING, ...) ->
      :class:`ServiceUnavailableError` (an outage; ``details`` hold the code, ``redis_reply``,
      and Redis's own words, ``redis_error``); for a write refusal (:data:`REDIS_WRITE_REFUSALS`)
      its subclass :class:`WritesRefusedError`, not counted by the breaker
    * refused credentials (``AuthenticationError``, NOAUTH, WRONGPASS) -> :class:`AuthenticationError`
    * NOPERM -> :class:`AuthorizationError`
    * a timeout -> :class:`OperationTimeoutError`; a lost connection -> :class:`ServiceUnavailableError`
    * WRONGTYPE -> :class:`ValidationError`
    * any other reply or client error -> :class:`InternalError`
    """
    if isinstance(exc, AppError):
        return exc
    where = f" during {operation}" if operation else ""
    exceptions = sys.modules.get("redis.exceptions")
    code = redis_reply_code(exc)
    if code is not None and code in REDIS_UNAVAILABLE_REPLIES:
        kind = WritesRefusedError if code in REDIS_WRITE_REFUSALS else ServiceUnavailableError
        return kind(
            f"Redis {REDIS_UNAVAILABLE_REPLIES[code]}{where} ({code})",
            service=service,
            details={"redis_reply": code, "redis_error": _text(exc)},
        )
    if code in ("NOAUTH", "WRONGPASS") or (exceptions is not None and isinstance(exc, exceptions.AuthenticationError)):
        return AuthenticationError(f"Redis refused the credentials{where}", service=service)
    if code == "NOPERM":
        return AuthorizationError(f"Redis does not let this user run the command{where}: {_text(exc)}", service=service)
    redis_timeout: tuple[type[BaseException], ...] = (exceptions.TimeoutError,) if exceptions is not None else ()
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, *redis_timeout)):
        return OperationTimeoutError(f"Redis did not answer in time{where}", service=service)
    redis_conn: tuple[type[BaseException], ...] = (exceptions.ConnectionError,) if exceptions is not None else ()
    if isinstance(exc, (ConnectionError, OSError, *redis_conn)):
        return ServiceUnavailableError(f"Redis is unreachable{where}: {_text(exc)}", service=service)
    if code == "WRONGTYPE":
        return ValidationError(f"Redis key holds a different kind of value{where}", service=service)
    if exceptions is not None and isinstance(exc, exceptions.ResponseError):
        return InternalError(f"Redis rejected a command{where}: {_text(exc)}", service=service)
    if exceptions is not None and isinstance(exc, exceptions.RedisError):
        return InternalError(f"Redis client error{where}: {_text(exc)}", service=service)
    return InternalError(f"unexpected error talking to Redis{where}: {_short(exc)}", service=service)


def _is_redis_exception(exc: BaseException) -> bool:
    exceptions = sys.modules.get("redis.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.RedisError)


def _text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
