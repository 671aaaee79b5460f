"""The one outage classifier: what is an outage, what a breaker counts, and Redis replies
classified by class and code (redis-py strips the OOM/READONLY prefixes; Lua wraps them) on a
real redis-server that runs out of memory or turns into a read-only replica."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis._parsers.base import BaseParser

from runtime.core.errors import (
    AppError,
    AuthenticationError,
    AuthorizationError,
    BulkheadFullError,
    CircuitOpenError,
    ConflictError,
    ExternalServiceError,
    InternalError,
    NotFoundError,
    OperationTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
    WritesRefusedError,
)
from runtime.resilience import is_outage, records_failure
from runtime.resilience.classify import REDIS_WRITE_REFUSALS, redis_reply_code, translate, translate_redis


@pytest.mark.parametrize(
    ("error", "outage", "counted"),
    [
        (ServiceUnavailableError("refused"), True, True),
        (ExternalServiceError("HTTP 503"), True, True),
        (OperationTimeoutError("slow"), True, True),
        (RateLimitError("HTTP 429"), True, True),
        (CircuitOpenError("llm", 3.0), True, False),
        (BulkheadFullError("full"), True, False),
        (ValidationError("HTTP 400"), False, False),
        (AuthenticationError("HTTP 401"), False, False),
        (AuthorizationError("HTTP 403"), False, False),
        (NotFoundError("HTTP 404"), False, False),
        (ConflictError("HTTP 409"), False, False),
        (InternalError("a bug"), False, True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, AppError) else str(v),
)
def test_the_outage_rule_and_the_breaker_rule(error: AppError, outage: bool, counted: bool) -> None:
    assert is_outage(error) is outage
    assert records_failure(error) is counted


def test_foreign_exceptions_are_judged_by_their_translation() -> None:
    assert is_outage(ConnectionRefusedError("refused")) and is_outage(TimeoutError())
    assert not is_outage(KeyError("bug"))
    assert not is_outage(asyncio.CancelledError()) and not is_outage(KeyboardInterrupt())


def _as_redis_py_raises(reply: str) -> rexc.RedisError:
    """The exception redis-py raises for an error reply (its own parser: class and stripped code)."""
    return BaseParser.parse_error(reply)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM"),
        ("READONLY You can't write against a read only replica.", "READONLY"),
        (
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. "
            "Commands that may modify the data set are disabled.",
            "MISCONF",
        ),
        ("LOADING Redis is loading the dataset in memory", "LOADING"),
        ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", "BUSY"),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", "MASTERDOWN"),
        ("NOREPLICAS Not enough good replicas to write.", "NOREPLICAS"),
        ("CLUSTERDOWN The cluster is down", "CLUSTERDOWN"),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "TRYAGAIN"),
        (
            "ERR Error running script (call to f_219bb33e): @user_script:1: @user_script: 1: "
            "-OOM command not allowed when used memory > 'maxmemory'.",
            "OOM",
        ),
        ("@user_script: 1: -READONLY You can't write against a read only replica.", "READONLY"),
    ],
)
def test_a_redis_that_refuses_writes_is_an_outage_whatever_redis_py_made_of_the_reply(reply: str, code: str) -> None:
    exc = _as_redis_py_raises(reply)
    assert redis_reply_code(exc) == code
    error = translate_redis(exc, "append message")
    # A write refusal (OOM, READONLY, MISCONF, NOREPLICAS) leaves reads working: the breaker does
    # not count it and it is journaled at once rather than retried.
    refusal = code in REDIS_WRITE_REFUSALS
    assert isinstance(error, ServiceUnavailableError) and error.retryable is not refusal
    assert isinstance(error, WritesRefusedError) is refusal and records_failure(error) is not refusal
    assert error.details["redis_reply"] == code and "append message" in error.message
    assert is_outage(exc) and is_outage(error)
    assert isinstance(translate(exc, "redis"), ServiceUnavailableError)


def test_redis_py_really_strips_the_prefixes_this_classifier_must_not_rely_on() -> None:
    oom = _as_redis_py_raises("OOM command not allowed when used memory > 'maxmemory'.")
    readonly = _as_redis_py_raises("READONLY You can't write against a read only replica.")
    loading = _as_redis_py_raises("LOADING Redis is loading the dataset in memory")
    assert type(oom) is rexc.OutOfMemoryError and not str(oom).startswith("OOM")
    assert type(readonly) is rexc.ReadOnlyError and not str(readonly).startswith("READONLY")
    assert isinstance(loading, rexc.BusyLoadingError) and isinstance(loading, rexc.ConnectionError)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("WRONGTYPE Operation against a key holding the wrong kind of value", ValidationError),
        ("NOAUTH Authentication required.", AuthenticationError),
        ("WRONGPASS invalid username-password pair or user is disabled.", AuthenticationError),
        ("NOPERM this user has no permissions to run the 'set' command", AuthorizationError),
        ("ERR unknown command 'FOO'", InternalError),
    ],
)
def test_redis_replies_that_are_not_outages(reply: str, kind: type[AppError]) -> None:
    exc = _as_redis_py_raises(reply)
    error = translate_redis(exc)
    assert type(error) is kind
    assert not is_outage(exc) and not is_outage(error)


def test_lost_connections_and_timeouts_of_redis_are_outages() -> None:
    assert isinstance(translate_redis(rexc.ConnectionError("Error 111 connecting")), ServiceUnavailableError)
    assert isinstance(translate_redis(rexc.TimeoutError("Timeout reading")), OperationTimeoutError)
    assert is_outage(rexc.ConnectionError("reset")) and is_outage(rexc.TimeoutError("slow"))


# ---------------------------------------------------------------- a real redis-server


@pytest.fixture
async def full_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The shared server with ``maxmemory 1`` under ``noeviction``: every write is refused with
    OOM (reads still work). Restored afterwards, whatever the test did."""
    client = aioredis.from_url(redis_url)
    await client.set("already-there", "x" * 100)
    old = await client.config_get("maxmemory*")
    await client.config_set("maxmemory-policy", "noeviction")
    await client.config_set("maxmemory", 1)
    try:
        yield client
    finally:
        await client.config_set("maxmemory", old["maxmemory"])
        await client.config_set("maxmemory-policy", old["maxmemory-policy"])
        await client.aclose()


async def _raised(coro: object) -> BaseException:
    try:
        await coro  # type: ignore[misc]
    except Exception as exc:
        return exc
    raise AssertionError("the command was not refused")


async def test_a_real_out_of_memory_redis_refuses_writes_as_an_outage(full_redis: aioredis.Redis) -> None:
    exc = await _raised(full_redis.set("k", "v"))
    assert redis_reply_code(exc) == "OOM" and is_outage(exc)
    error = translate_redis(exc, "SET")
    assert isinstance(error, ServiceUnavailableError) and "out of memory" in error.user_message()
    assert await full_redis.get("already-there") == b"x" * 100  # reads go on


async def test_a_lua_script_that_hits_out_of_memory_is_an_outage_too(full_redis: aioredis.Redis) -> None:
    exc = await _raised(full_redis.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v"))
    assert "OOM" in str(exc) or isinstance(exc, rexc.OutOfMemoryError)
    assert redis_reply_code(exc) == "OOM" and is_outage(exc)
    assert isinstance(translate_redis(exc, "append message"), ServiceUnavailableError)


async def test_a_pipeline_refused_for_memory_is_an_outage(full_redis: aioredis.Redis) -> None:
    exc = await _raised(full_redis.pipeline(transaction=False).set("p", "1").get("already-there").execute())
    assert redis_reply_code(exc) == "OOM" and is_outage(exc)


@pytest.fixture
async def replica_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The shared server turned into a read-only replica of a primary that does not answer
    (so it never syncs, and keeps its data). Made a primary again afterwards."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.from_url(redis_url)
    await client.set("already-there", "kept")
    await client.config_set("replica-read-only", "yes")
    await client.replicaof("127.0.0.1", port)
    try:
        yield client
    finally:
        await client.replicaof("NO", "ONE")
        await client.aclose()


async def test_a_real_read_only_replica_refuses_writes_as_an_outage(replica_redis: aioredis.Redis) -> None:
    exc = await _raised(replica_redis.set("k", "v"))
    assert isinstance(exc, rexc.ReadOnlyError) and not str(exc).startswith("READONLY")
    assert redis_reply_code(exc) == "READONLY" and is_outage(exc)
    assert "read-only replica" in translate_redis(exc, "SET").user_message()
    script = await _raised(replica_redis.eval("return redis.call('SET', KEYS[1], 'v')", 1, "k"))
    assert redis_reply_code(script) == "READONLY" and is_outage(script)
    assert await replica_redis.get("already-there") == b"kept"
