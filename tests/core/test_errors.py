"""The error taxonomy: types, retryability and one-line user messages."""

from __future__ import annotations

import pytest

from runtime.core import errors as E


@pytest.mark.parametrize(
    ("cls", "etype", "retryable"),
    [
        (E.ValidationError, E.ErrorType.VALIDATION, False),
        (E.AuthenticationError, E.ErrorType.AUTHENTICATION, False),
        (E.AuthorizationError, E.ErrorType.AUTHORIZATION, False),
        (E.NotFoundError, E.ErrorType.NOT_FOUND, False),
        (E.RateLimitError, E.ErrorType.RATE_LIMIT, True),
        (E.ExternalServiceError, E.ErrorType.EXTERNAL_SERVICE, True),
        (E.ServiceUnavailableError, E.ErrorType.EXTERNAL_SERVICE, True),
        (E.InternalError, E.ErrorType.INTERNAL, False),
        (E.OperationTimeoutError, E.ErrorType.TIMEOUT, True),
        (E.ConflictError, E.ErrorType.CONFLICT, True),
    ],
)
def test_each_class_has_its_type_and_retry_default(cls: type[E.AppError], etype: E.ErrorType, retryable: bool) -> None:
    err = cls("something\nbroke  here", service="redis")
    assert err.type is etype and err.retryable is retryable
    assert isinstance(err, E.ApplicationError)
    assert err.user_message() == "redis: something broke here"


def test_circuit_open_error_is_fast_fail_and_says_when() -> None:
    err = E.CircuitOpenError("llm", retry_after=12.34, last_error="boom")
    assert err.type is E.ErrorType.CIRCUIT_OPEN and not err.retryable
    assert err.user_message() == "llm is unavailable (circuit open; next probe in 12.3s)"
    assert err.to_dict()["details"] == {"breaker": "llm", "last_error": "boom"}


def test_translation_keeps_the_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise E.ServiceUnavailableError("cannot reach Redis", service="redis") from exc
    except E.AppError as err:
        assert isinstance(err.__cause__, ConnectionRefusedError)
        assert E.describe(err) == "redis: cannot reach Redis"
    assert E.describe(ValueError("bad\nvalue")) == "ValueError: bad value"
