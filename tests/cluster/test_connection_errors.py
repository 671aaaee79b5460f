"""redis-py 8.1 can report a connection the server closed (a cluster primary killed mid-load) as
AttributeError or TypeError about ``None`` from its write path (redis/redis-py#4287): the state
layer must see the outage it is (journal the write, retry after a topology refresh), not a bug
of ours (a 500). Seen once in the load test before this mapping existed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runtime.core.errors import ServiceUnavailableError
from runtime.resilience.classify import is_outage
from runtime.state.client import translated


def _raiser_from(filename: str, exc: BaseException) -> Callable[[], None]:
    """A function whose code lives in ``filename``: its frame is where the error is raised."""
    namespace: dict[str, object] = {"exc": exc}
    exec(compile("def write():\n    raise exc\n", filename, "exec"), namespace)
    write = namespace["write"]
    assert callable(write)
    return write  # type: ignore[return-value]


async def _write_with(write: Callable[[], None]) -> None:
    write()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (
            ".venv/lib/python3.11/site-packages/redis/asyncio/connection.py",
            AttributeError("'NoneType' object has no attribute 'writelines'"),
        ),
        ("/usr/lib/python3.12/asyncio/selector_events.py", TypeError("'NoneType' object is not callable")),
    ],
)
async def test_a_write_on_a_connection_closed_under_us_is_an_outage(path: str, error: Exception) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        await translated(_write_with(_raiser_from(path, error)), "message append")
    assert is_outage(caught.value) and caught.value.retryable
    assert caught.value.user_message().startswith("redis: Redis closed the connection during message append")
    assert caught.value.__cause__ is error


async def test_the_same_error_from_our_own_code_stays_a_bug() -> None:
    error = AttributeError("'NoneType' object has no attribute 'writelines'")
    with pytest.raises(AttributeError):
        await translated(_write_with(_raiser_from("runtime/state/history.py", error)), "message append")
