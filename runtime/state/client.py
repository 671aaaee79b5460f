"""The Redis connection and the boundary where redis-py's exceptions become AppErrors.

One :func:`make_redis_client` per process gives one connection pool with short socket
timeouts and *no* redis-py retries: retries belong to ``Guard("redis")`` alone, so a killed
server fails each attempt in milliseconds and the breaker sees every failure.

A URL whose scheme ends in ``+cluster`` (``redis+cluster://host:port``, ``rediss+cluster://``),
or ``cluster=True``, gives redis-py's cluster client instead: the same commands, routed by key
slot. Every multi-key script and pipeline of the stores keeps its keys in one slot (hash tags,
see :mod:`runtime.state.keys`), so the same code runs on both.

:class:`RedisRunner` is what the stores use: ``await runner.run(lambda r: r.get(key))``
runs the operation through the guard, translating redis-py errors *inside* the guarded
function (the guard only retries AppErrors marked retryable).

Replica acknowledgement (``[redis].min_replicas_ack``, issue 19): :meth:`RedisRunner.run_script`
with ``acked=True`` on a runner made by :meth:`RedisRunner.with_replica_ack` sends the script (as
``EVAL``) and ``WAIT numreplicas timeout`` in one pipeline, so both go over one connection: WAIT counts the
replicas that have every write *of its own connection* (the Redis docs), so a WAIT sent on any
other connection would prove nothing. On a cluster the pipeline is redis-py's cluster pipeline,
which sends each node's commands over one connection of that node; WAIT is pinned with
``target_nodes`` to the node owning the script's first key (redis-py would otherwise send a
keyless WAIT to every primary). Replication is one ordered stream per primary, so an
acknowledged append also proves every earlier write to that primary (the conversation's
creation included). Fewer replicas in time raises :class:`ReplicaAckError` *after* the guard:
the write is in Redis, so it is neither retried nor counted by the breaker, but it is an outage
to the conversation store, which journals the record as well and says so.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

from runtime.core.errors import (
    AppError,
    ConfigError,
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from runtime.resilience.classify import translate_redis

T = TypeVar("T")

SERVICE = "redis"

#: Error prefixes our Lua scripts raise with ``redis.error_reply``; mapped to typed errors.
SCRIPT_NOT_FOUND = "HFNOTFOUND"
SCRIPT_INVALID = "HFINVALID"
SCRIPT_CONFLICT = "HFCONFLICT"

#: What the stores talk to: one server (or a Sentinel-managed primary) or a Redis Cluster.
RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"

#: Concurrent calls a RedisRunner lets through to a cluster client (its per-node pools do not
#: wait for a free connection the way the single-server BlockingConnectionPool does).
CLUSTER_CONCURRENCY = 64
#: Connections per cluster node kept beyond that cap for pub/sub subscriptions.
PUBSUB_HEADROOM = 16

#: The URL scheme suffix that selects the cluster client (``redis+cluster://host:port``).
CLUSTER_SUFFIX = "+cluster"


@dataclass(frozen=True)
class ReplicaAck:
    """How many replicas must acknowledge an acked write (``replicas``; 0: no WAIT is sent) and
    how long Redis waits for them (``timeout``, seconds; sent to WAIT in whole milliseconds, at
    least 1, since ``WAIT n 0`` would block forever)."""

    replicas: int = 0
    timeout: float = 0.5

    @property
    def timeout_ms(self) -> int:
        """``timeout`` in milliseconds as WAIT takes it (at least 1)."""
        return max(1, round(self.timeout * 1000))


class ReplicaAckError(ServiceUnavailableError):
    """An acked write reached the primary but fewer than ``required`` replicas had it within the
    timeout (``acknowledged`` did). Not retryable: the write itself succeeded; the conversation
    store journals it as well and replays it until the replicas acknowledge it."""

    def __init__(self, required: int, acknowledged: int, timeout: float, operation: str = "") -> None:
        noun = "replica" if required == 1 else "replicas"
        super().__init__(
            f"written to Redis but not yet to {required} {noun} ({acknowledged} acknowledged within {timeout:g} s)",
            retryable=False,
            service=SERVICE,
            details={"required": required, "acknowledged": acknowledged, "timeout": timeout, "operation": operation},
        )
        self.required = required
        self.acknowledged = acknowledged


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
    return urlsplit(url).scheme.endswith(CLUSTER_SUFFIX)


def cluster_url(url: str, cluster: bool) -> str:
    """``url`` with ``+cluster`` added to its scheme when ``cluster`` is True (``[redis].cluster``)
    and it has none yet; otherwise ``url`` unchanged."""
    if not cluster or not url or is_cluster_url(url):
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme + CLUSTER_SUFFIX))


class GuardLike(Protocol):
    """The part of ``runtime.resilience.Guard`` the stores use."""

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` with retries, breaker and timeout; raises AppErrors only."""
        ...


def make_redis_client(
    url: str,
    *,
    connect_timeout: float = 1.0,
    socket_timeout: float = 2.0,
    max_connections: int = 64,
    pool_timeout: float = 5.0,
    cluster: bool = False,
    **kwargs: Any,
) -> RedisClient:
    """A client with one bounded pool that fails fast when the server is gone.

    ``retry=Retry(NoBackoff(), 0)`` switches off redis-py's own retry loop (on by default
    since redis-py 6), which would otherwise multiply with the guard's attempts. The pool
    is a blocking one: a burst of concurrent calls waits up to ``pool_timeout`` for a
    connection instead of failing with "Too many connections". Timeouts are in seconds.

    A ``+cluster`` URL (or ``cluster=True``) returns a :class:`redis.asyncio.RedisCluster`
    seeded from the URL's host and port: it learns the topology with ``CLUSTER SLOTS``,
    follows MOVED/ASK redirections itself and, after a connection error, refreshes the
    topology on the next call, so a replica promoted after a primary's death is found by
    the guard's next attempt. ``max_connections`` is then per node; the cluster client's pool
    does not block when full (it raises), so :class:`RedisRunner` caps concurrent calls instead.

    Raises :class:`ConfigError` (one line, without the URL: it may hold a password) for a URL
    redis-py refuses: a query parameter it does not know, or a database other than 0 on a cluster.
    """
    if cluster or is_cluster_url(url):
        parts = urlsplit(url)
        plain = urlunsplit(parts._replace(scheme=parts.scheme.removesuffix(CLUSTER_SUFFIX)))
        try:
            return _cluster_from_url(plain, connect_timeout, socket_timeout, max_connections, **kwargs)
        except (TypeError, ValueError, rexc.RedisClusterException) as exc:
            raise _bad_url(exc, cluster=True) from None
    try:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            timeout=pool_timeout,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            socket_keepalive=True,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
            health_check_interval=0,
            **kwargs,
        )
        # Connections are made lazily: build one (it does not connect) so that a query
        # parameter the connection does not take fails here, once, not on every call.
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError) as exc:
        raise _bad_url(exc, cluster=False) from None
    return aioredis.Redis.from_pool(pool)


def _cluster_from_url(
    url: str, connect_timeout: float, socket_timeout: float, max_connections: int, **kwargs: Any
) -> RedisCluster:
    return RedisCluster.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        # Headroom over the runner's cap (CLUSTER_CONCURRENCY) for pub/sub connections.
        max_connections=max_connections + PUBSUB_HEADROOM,
        retry=Retry(NoBackoff(), 0),
        # A dead primary's slots fail until its replica is promoted; the other slots serve.
        require_full_coverage=False,
        decode_responses=False,
        health_check_interval=0,
        **kwargs,
    )


def _bad_url(exc: BaseException, *, cluster: bool) -> ConfigError:
    """One line for a Redis URL redis-py refuses (never the URL itself: it may hold a password)."""
    text = " ".join(str(exc).split())
    if cluster and "'db'" in text:
        return ConfigError(
            "the Redis URL ([redis].url, REDIS_URL or --redis-url) names a database other than 0, "
            "and a Redis Cluster has only database 0: drop the '/N' after host:port"
        )
    unknown = re.search(r"unexpected keyword argument '([^']+)'", text)
    if unknown:
        return ConfigError(
            f"the Redis URL ([redis].url, REDIS_URL or --redis-url) has the query parameter "
            f"'{unknown.group(1)}', which redis-py does not know: remove it"
        )
    return ConfigError(f"the Redis URL ([redis].url, REDIS_URL or --redis-url) is not usable: {text[:200]}")


def translate(exc: BaseException, operation: str = "") -> AppError:
    """The AppError for a redis-py (or socket) exception; the cause is chained by the caller.

    Our own Lua scripts' replies (:data:`SCRIPT_NOT_FOUND`, :data:`SCRIPT_INVALID`,
    :data:`SCRIPT_CONFLICT`) become NotFoundError, ValidationError and ConflictError; every
    other failure is classified by :func:`runtime.resilience.classify.translate_redis`, the
    one rule (a Redis that refuses writes with OOM, READONLY, MISCONF or LOADING is an outage:
    ServiceUnavailableError, so the conversation store journals the write).
    """
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, rexc.ResponseError):
        text = str(exc)
        head = text.split(" ", 1)[0]
        if head == SCRIPT_NOT_FOUND:
            return NotFoundError(text[len(head) :].strip() or "not found", service=SERVICE)
        if head == SCRIPT_INVALID:
            return ValidationError(text[len(head) :].strip() or "invalid request", service=SERVICE)
        if head == SCRIPT_CONFLICT:
            return ConflictError(text[len(head) :].strip() or "conflict", service=SERVICE)
    return translate_redis(exc, operation, service=SERVICE)


async def translated(awaitable: Awaitable[T], operation: str = "") -> T:
    """Await ``awaitable``, re-raising a redis-py, timeout or OS failure as the AppError
    :func:`translate` gives (the original is the ``__cause__``).

    A connection the server closed under redis-py's feet can surface as AttributeError or
    TypeError about ``None`` from inside redis-py's or asyncio's write path (redis-py 8.1,
    redis/redis-py#4287; seen here when a cluster primary was killed mid-load): that is the
    connection failure it is, ServiceUnavailableError, not a bug of ours (an InternalError, a
    500). Any other AttributeError or TypeError is raised as it is.
    """
    try:
        return await awaitable
    except AppError:
        raise
    except (TimeoutError, rexc.RedisError, OSError) as exc:
        raise translate(exc, operation) from exc
    except rexc.RedisClusterException as exc:
        # Not a RedisError: "Redis Cluster cannot be connected" (no seed node answers), a slot
        # with no live node. Either way the cluster is out, like a single server that is down.
        during = f" during {operation}" if operation else ""
        raise ServiceUnavailableError(
            f"Redis Cluster is unreachable{during}: {' '.join(str(exc).split())[:200]}", service=SERVICE
        ) from exc
    except (AttributeError, TypeError) as exc:
        if not _closed_under_us(exc):
            raise
        during = f" during {operation}" if operation else ""
        raise ServiceUnavailableError(
            f"Redis closed the connection{during} ({type(exc).__name__}: {exc})", service=SERVICE
        ) from exc


#: What a cluster node answers a client that does not know it is one: a redirection, or
#: "ERR SELECT is not allowed in cluster mode" for a URL naming a database.
_CLUSTER_ONLY = (rexc.MovedError, rexc.AskError, rexc.ClusterDownError)


async def _plain_call(client: aioredis.Redis, op: Callable[[Any], Awaitable[T]], operation: str) -> T:
    """``translated(op(client))`` on a single-server client; a cluster node's reply to it
    (MOVED, ASK, CLUSTERDOWN, SELECT refused "in cluster mode") is :class:`ConfigError` naming
    the fix, not a failed command: the URL points at a Redis Cluster without saying so. Its HTTP
    status is 500: the server is misconfigured, the request is fine."""
    try:
        return await translated(op(client), operation)
    except AppError as exc:
        cause = exc.__cause__
        if isinstance(cause, _CLUSTER_ONLY) or (
            isinstance(cause, rexc.ResponseError) and "in cluster mode" in str(cause)
        ):
            raise ConfigError(
                "the Redis at [redis].url (REDIS_URL, --redis-url) is a Redis Cluster node "
                f"(it answered {type(cause).__name__}): use a redis+cluster://HOST:PORT URL "
                "(database 0) or set [redis].cluster = true",
                service=SERVICE,
                status_code=500,  # the server's configuration, not the request (HTTP)
            ) from cause
        raise


#: Where the write path of a connection the server closed fails with an error about ``None``.
_WRITE_PATH = ("redis/asyncio/connection.py", "asyncio/streams.py", "asyncio/selector_events.py")


def _closed_under_us(exc: BaseException) -> bool:
    """True for redis/redis-py#4287: an error about ``None`` raised in a connection's write path."""
    if "NoneType" not in str(exc):
        return False
    tb = exc.__traceback__
    last = ""
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        tb = tb.tb_next
    return last.endswith(_WRITE_PATH)


class _ClusterGate:
    """What every runner over one cluster client shares: whether the topology must be re-read,
    the lock that lets one task re-read it, and the cap on concurrent calls."""

    def __init__(self, stale: bool) -> None:
        self.stale = stale
        self.lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(CLUSTER_CONCURRENCY)


class RedisRunner:
    """Runs Redis operations through the guard, with errors translated inside the guarded call.

    ``replica_ack`` applies to :meth:`run_script` calls made with ``acked=True`` only (default:
    none, no WAIT); :meth:`with_replica_ack` gives a runner sharing this one's client and guard
    with another setting.
    """

    def __init__(self, client: RedisClient, guard: GuardLike, *, replica_ack: ReplicaAck | None = None) -> None:
        self.client = client
        self.guard = guard
        self.replica_ack = replica_ack or ReplicaAck()
        # redis-py 8.1's async cluster client re-reads the topology on first use and after a
        # connection error; several tasks doing so at once close each other's connections
        # (measured: 769 of 1,000 concurrent first calls failed). One task refreshes it here.
        self._gate = _ClusterGate(isinstance(client, RedisCluster))

    def with_replica_ack(self, replicas: int, timeout: float) -> RedisRunner:
        """A runner over the same client, guard and cluster state whose acked script calls wait
        for ``replicas`` replicas up to ``timeout`` seconds (``[redis].min_replicas_ack`` and
        ``replica_ack_timeout``); ``replicas`` 0 gives one that never sends WAIT."""
        other = copy.copy(self)
        other.replica_ack = ReplicaAck(replicas, timeout)
        return other

    @property
    def cluster(self) -> bool:
        """True when the client is a Redis Cluster client."""
        return isinstance(self.client, RedisCluster)

    async def run(self, op: Callable[[Any], Awaitable[T]], operation: str = "") -> T:
        """``await op(client)`` through the guard; ``operation`` names it in error messages.

        Raises the AppErrors of :func:`translate` (after the guard's retries) or
        :class:`runtime.core.errors.CircuitOpenError` while the breaker is open.
        """
        client = self.client
        if not isinstance(client, RedisCluster):
            return await self.guard.call(lambda: _plain_call(client, op, operation))
        return await self.guard.call(lambda: self._cluster_call(client, op, operation))

    async def _cluster_call(self, client: RedisCluster, op: Callable[[Any], Awaitable[T]], operation: str) -> T:
        gate = self._gate
        if gate.stale:
            async with gate.lock:
                if gate.stale:
                    await translated(client.initialize(), "cluster topology")
                    gate.stale = False
        try:
            async with gate.slots:
                return await translated(op(client), operation)
        except AppError as exc:
            if exc.retryable:  # a node died or moved: the next attempt re-reads the topology first
                gate.stale = True
            raise

    async def run_script(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[EncodableT],
        operation: str = "",
        *,
        acked: bool = False,
    ) -> Any:
        """Run a registered Lua script through the guard; the script's reply.

        With ``acked`` and :attr:`replica_ack` asking for replicas, the script and ``WAIT`` go
        in one pipeline over one connection (see the module docstring) and
        :class:`ReplicaAckError` is raised, after the guard, when fewer replicas acknowledged
        it in time. Otherwise it is ``script(keys, args)`` through :meth:`run`. Raises the
        AppErrors of :meth:`run` too.
        """
        need = self.replica_ack
        if not acked or need.replicas <= 0:
            return await self.run(lambda r: script(keys=keys, args=args, client=r), operation)
        reply, acknowledged = await self.run(lambda r: _script_and_wait(r, script, keys, args, need), operation)
        if acknowledged < need.replicas:
            raise ReplicaAckError(need.replicas, acknowledged, need.timeout, operation)
        return reply

    async def hgetall_many(self, keys: list[str], operation: str = "") -> list[dict[bytes, bytes]]:
        """HGETALL of each key in one pipelined round trip (an empty dict for a missing key)."""

        async def fetch(r: RedisClient) -> list[dict[bytes, bytes]]:
            # On a cluster the pipeline is split per node: one round trip per node touched.
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return await pipe.execute()

        return await self.run(fetch, operation)

    async def ping(self) -> bool:
        """PING through the guard: True when Redis answers, else the AppError of :meth:`run`."""
        return bool(await self.run(lambda r: r.ping(), "PING"))


#: Cluster replies that mean "ask again once the topology is re-read" when a pipeline is sent
#: without redis-py's redirection handling (which would resend the script on another connection).
_REDIRECTIONS = (rexc.MovedError, rexc.AskError, rexc.TryAgainError, rexc.ClusterDownError)


async def _script_and_wait(
    client: RedisClient, script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT], need: ReplicaAck
) -> tuple[Any, int]:
    """The script and WAIT in one round trip over one connection; (its reply, replicas that
    acknowledged).

    The script goes as EVAL with its body, not EVALSHA: a server that does not know it yet (a
    fresh or promoted node) would refuse EVALSHA with NOSCRIPT while the WAIT behind it still
    waited its whole timeout for the connection's earlier writes. Redis caches the compiled
    script by its SHA1 either way.
    """
    body = script.script
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(keys[0])
        cluster_pipe = client.pipeline()
        # The cluster pipeline blocks its eval() method (scripts may span slots); ours stay in
        # one slot (hash tags), so the raw command is routed by its first key like any other.
        cluster_pipe.execute_command("EVAL", body, len(keys), *keys, *args)
        cluster_pipe.execute_command("WAIT", need.replicas, need.timeout_ms, target_nodes=node)
        # No redirection handling: it would resend a moved script alone, on another connection.
        reply, acknowledged = await cluster_pipe.execute(raise_on_error=False, allow_redirections=False)
    else:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("EVAL", body, len(keys), *keys, *args)
        pipe.wait(need.replicas, need.timeout_ms)
        reply, acknowledged = await pipe.execute(raise_on_error=False)
    for result in (reply, acknowledged):
        if isinstance(result, _REDIRECTIONS):
            raise ServiceUnavailableError(
                f"the cluster moved this key ({type(result).__name__}); retrying after a topology refresh",
                service=SERVICE,
            ) from result
        if isinstance(result, Exception):
            raise result
    return reply, int(acknowledged)
