"""The spec's GlobalErrorHandler: every error of every request becomes one typed JSON body.

Body (the spec's shape, which the OpenAI SDK also reads: it takes ``error.message``)::

    {"error": {"type": "not_found", "message": "...", "request_id": "...", "path": "/v1/...",
               "timestamp": "2024-01-01T00:00:00.000Z", "details": {...}}}

plus ``debug`` (exception class and traceback) only when ``[server].environment`` is
``"development"``, and OpenAI's ``code`` and ``param`` when the error has them in its details
(``{"code": "model_not_found", "param": "model"}``: the OpenAI SDK reads them as
``exc.code`` and ``exc.param``). Statuses come from the taxonomy (:mod:`runtime.core.errors`): validation 400
(422 for a request the schema refuses), authentication 401, authorization 403, not found 404,
conflict 409, rate limit 429 with ``Retry-After``, external service 502/503 (``Retry-After``
when a breaker knows its next probe), timeout 504, internal 500. Bad input is always a 4xx: a
body that is not JSON, a wrong type, an unknown route or method. An exception that is not an
AppError is a bug: 500 with a generic message (its text may hold internals), the traceback in
the log.

Client errors (4xx) are logged as warnings, internal and external ones as errors, each with the
method, path, user agent, client address and (through :mod:`runtime.core.logs`) the request id.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from runtime.core.errors import AppError, ErrorType
from runtime.core.logs import redact, request_id_var

log = logging.getLogger(__name__)

#: Wire type of a bare HTTP status raised by the framework (unknown route, wrong method...).
_STATUS_TYPES: dict[int, ErrorType] = {
    400: ErrorType.VALIDATION,
    401: ErrorType.AUTHENTICATION,
    403: ErrorType.AUTHORIZATION,
    404: ErrorType.NOT_FOUND,
    409: ErrorType.CONFLICT,
    429: ErrorType.RATE_LIMIT,
    504: ErrorType.TIMEOUT,
}

#: Fields of OpenAI's error object copied from an error's details to the body's top level.
OPENAI_FIELDS = ("code", "param")

#: Where FastAPI says a refused value came from (the first part of a validation error's ``loc``).
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})

#: Error types whose 5xx is someone else's failure (logged as an error, alerted as external).
EXTERNAL_TYPES = frozenset({ErrorType.EXTERNAL_SERVICE, ErrorType.TIMEOUT, ErrorType.CIRCUIT_OPEN})


@dataclass(frozen=True)
class ServerErrorReport:
    """A 5xx answered to a client, for alerts and metrics: the status, the wire ``type``, the
    one-line ``message``, the ``service`` that failed (when known) and the request's ``path``."""

    status: int
    type: str
    message: str
    service: str | None
    path: str
    request_id: str


OnServerError = Callable[[ServerErrorReport], None]


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int((now % 1) * 1000):03d}Z"


def _status_type(status: int) -> ErrorType:
    if status in _STATUS_TYPES:
        return _STATUS_TYPES[status]
    if 400 <= status < 500:
        return ErrorType.VALIDATION
    if status in (502, 503):
        return ErrorType.EXTERNAL_SERVICE
    return ErrorType.INTERNAL


class GlobalErrorHandler:
    """Turns exceptions into error responses; install it on an app with :meth:`install`.

    Args:
        development: include ``debug`` (exception class, traceback) in bodies.
        on_server_error: called (synchronously, must not raise or block) for every 5xx answered;
            the alerts and metrics hook.
        clock: wall-clock epoch seconds, for ``timestamp``.
    """

    def __init__(
        self,
        *,
        development: bool = False,
        on_server_error: OnServerError | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.development = development
        self.on_server_error = on_server_error
        self._clock = clock

    def install(self, app: FastAPI) -> None:
        """Register the handlers for AppError, schema validation and framework HTTP errors.

        Anything else is caught by :class:`runtime.serve.request_ids.RequestIdMiddleware`,
        which calls :meth:`response` (so the id header is on a crash's answer too)."""
        app.add_exception_handler(AppError, self._app_error)  # type: ignore[arg-type]
        app.add_exception_handler(RequestValidationError, self._validation_error)  # type: ignore[arg-type]
        app.add_exception_handler(StarletteHTTPException, self._http_error)  # type: ignore[arg-type]

    # ------------------------------------------------------------ handlers

    async def _app_error(self, request: Request, exc: AppError) -> Response:
        return self.response(
            exc, method=request.method, path=request.url.path, headers=request.headers, client=_client(request)
        )

    async def _validation_error(self, request: Request, exc: RequestValidationError) -> Response:
        return self.response(
            exc, method=request.method, path=request.url.path, headers=request.headers, client=_client(request)
        )

    async def _http_error(self, request: Request, exc: StarletteHTTPException) -> Response:
        return self.response(
            exc, method=request.method, path=request.url.path, headers=request.headers, client=_client(request)
        )

    # ------------------------------------------------------------ the one mapping

    def classify(self, exc: BaseException) -> tuple[int, ErrorType, str, dict[str, Any], dict[str, str]]:
        """(status, wire type, one-line message, details, extra headers) for ``exc``."""
        headers: dict[str, str] = {}
        if isinstance(exc, AppError):
            status = exc.status_code if 400 <= exc.status_code < 600 else 500
            if exc.retry_after is not None and status in (429, 503):
                headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            elif status == 429:
                headers["Retry-After"] = "1"
            if status == 401:
                headers["WWW-Authenticate"] = "Bearer"  # RFC 6750: the scheme a client should use
            details = _jsonable(exc.details)
            if exc.service:
                details.setdefault("service", exc.service)
            details.setdefault("retryable", exc.retryable)
            return status, exc.error_type, exc.user_message(), details, headers
        if isinstance(exc, RequestValidationError):
            errors = [
                {
                    "loc": [str(part) for part in err.get("loc", ())],
                    "msg": str(err.get("msg", "")),
                    "type": str(err.get("type", "")),
                }
                for err in exc.errors()
            ]
            first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
            where = ".".join(p for p in first["loc"] if p != "body") or "request"
            refused: dict[str, Any] = {"errors": errors}
            # OpenAI's ``param``: the field or parameter refused, without where it came from.
            loc = [str(part) for part in first["loc"]]
            param = ".".join(loc[1:] if loc and loc[0] in _SOURCES else loc)
            if param:
                refused["param"] = param
            return 422, ErrorType.VALIDATION, f"{where}: {first['msg']}", refused, headers
        if isinstance(exc, StarletteHTTPException):
            headers.update(exc.headers or {})
            status = exc.status_code if 400 <= exc.status_code < 600 else 500
            return status, _status_type(status), str(exc.detail), {}, headers
        return 500, ErrorType.INTERNAL, "internal error: the server failed; the request id is in the log", {}, headers

    def response(
        self,
        exc: BaseException,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        client: str = "",
    ) -> JSONResponse:
        """The JSON error response for ``exc`` raised while serving ``method path``; logs it and,
        for a 5xx, calls ``on_server_error``."""
        status, error_type, message, details, extra = self.classify(exc)
        request_id = request_id_var.get() or ""
        body: dict[str, Any] = {
            "type": error_type.value,
            "message": message,
            "request_id": request_id,
            "path": path,
            "timestamp": _timestamp(self._clock()),
            "details": details,
        }
        for field in OPENAI_FIELDS:
            if isinstance(details.get(field), str):
                body[field] = details[field]
        if self.development:
            body["debug"] = {
                "exception": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "traceback": redact("".join(traceback.format_exception(exc))),
            }
        agent = (headers or {}).get("user-agent", "")
        line = "%s %s -> %d %s: %s (client %s, user agent %r)"
        args = (method, path, status, error_type.value, message, client or "?", agent[:200])
        if status < 500:
            log.warning(line, *args)
        elif error_type in EXTERNAL_TYPES:
            log.error(line, *args)
        else:
            log.error(line, *args, exc_info=exc)
        if status >= 500 and self.on_server_error is not None:
            service = exc.service if isinstance(exc, AppError) else None
            try:
                self.on_server_error(ServerErrorReport(status, error_type.value, message, service, path, request_id))
            except Exception:
                log.exception("the server-error hook failed")
        return JSONResponse({"error": body}, status_code=status, headers=extra)


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else ""


def _jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold turned into its ``str`` (details are for reading)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
