"""Failures of an LLM call, in Holdfast's error taxonomy.

The translation itself is the one every HTTP endpoint shares,
:mod:`runtime.resilience.http_errors` (its module docstring has the table: 400/413/422 ->
ValidationError, 401 -> AuthenticationError, 403 -> AuthorizationError, 404 -> NotFoundError,
408 -> OperationTimeoutError, 409 -> ConflictError, 429 -> RateLimitError with Retry-After,
5xx -> ExternalServiceError, timeouts, refused connections, garbled bodies). This module only
says how the LLM endpoint is named and what to check when it refuses: the API key for
401/403, ``[llm].model`` and ``[llm].base_url`` for 404. It is called inside the function
each guarded LLM call gives its Guard, so the retry policy and the breaker only ever see
:class:`AppError`; whether a failure is an outage (the fallbacks answer) is
:func:`runtime.resilience.classify.is_outage`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from runtime.core.errors import AppError
from runtime.resilience.http_errors import Endpoint, translate_http
from runtime.resilience.http_errors import error_for_response as _error_for_response

SERVICE = "llm"
LABEL = "the LLM endpoint"


def api_key_hint(api_key_env: str) -> str:
    """Where the API key comes from, for a refused-credentials message (``api_key_env`` is the
    name of the environment variable, e.g. ``OPENAI_API_KEY``)."""
    return f"check the API key (set ${api_key_env} or [llm].api_key) and that it may use this model"


def endpoint(api_key_env: str = "OPENAI_API_KEY") -> Endpoint:
    """How errors of the LLM endpoint are named and what they suggest."""
    return Endpoint(
        service=SERVICE,
        label=LABEL,
        credentials_hint=api_key_hint(api_key_env),
        not_found_hint="check [llm].model and [llm].base_url",
    )


def error_for_response(
    status: int,
    body: object,
    headers: Mapping[str, str] | None,
    *,
    api_key_env: str = "OPENAI_API_KEY",
    now: Callable[[], float] = time.time,
) -> AppError:
    """The AppError for an HTTP error answer (``status``, decoded ``body``, ``headers``) of the
    LLM endpoint; see :func:`runtime.resilience.http_errors.error_for_response`."""
    return with_hints(_error_for_response(status, body, headers, endpoint(api_key_env), now=now))


def translate(exc: BaseException, *, api_key_env: str = "OPENAI_API_KEY") -> AppError:
    """The AppError for an exception raised by the openai SDK or httpx during an LLM call; see
    :func:`runtime.resilience.http_errors.translate_http`."""
    return with_hints(translate_http(exc, endpoint(api_key_env)))


#: How endpoints say the prompt does not fit their context: OpenAI and vLLM ("This model's
#: maximum context length is 4096 tokens"), llama.cpp ("the request exceeds the available
#: context size"), LM Studio and others ("context length exceeded", "context window").
_CONTEXT_FULL_RE = re.compile(
    r"maximum context length is (\d+)|context_length_exceeded|exceeds the available context size"
    r"|context (?:length|window|size) (?:of \d+ )?(?:exceeded|is exceeded)|prompt is too long",
    re.IGNORECASE,
)


def with_hints(error: AppError) -> AppError:
    """``error`` with what to do added when the endpoint said the prompt is longer than its
    context: Holdfast budgets prompts for ``[llm].context_window`` tokens, which must not be more
    than the endpoint's (the size is named when the endpoint said it)."""
    if error.status_code not in (400, 413, 422) or "[llm].context_window" in error.message:
        return error
    found = _CONTEXT_FULL_RE.search(error.message)
    if found is None:
        return error
    size = f" ({found.group(1)} tokens)" if found.group(1) else ""
    error.message = f"{error.message}; set [llm].context_window to the endpoint's context size{size}"
    error.args = (error.message,)
    return error
