"""Child processes that must never outlive Holdfast (embedded redis-server, demo LLM).

Three layers keep them from becoming orphans: the kernel sends the child SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``, Linux), an ``atexit`` hook stops every child still
running, and :meth:`ManagedProcess.stop` is called on orderly shutdown.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from runtime.core.errors import AppError, ServiceUnavailableError

log = logging.getLogger(__name__)

#: What a server's :meth:`ManagedServer.start` returns (its address type, e.g. host and port).
AddressT = TypeVar("AddressT")

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


def _die_with_parent(sig: int) -> Callable[[], None]:
    parent = os.getpid()
    # Resolved before the fork: find_library runs ldconfig, which would widen the window below.
    libc = (
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if sys.platform.startswith("linux")
        else None
    )

    def set_death_signal() -> None:  # runs in the child between fork and exec
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, sig)
            if os.getppid() != parent:  # the parent died before prctl took effect (man 2 prctl)
                os._exit(1)

    return set_death_signal


def death_signal_preexec(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for a spawn (``subprocess.Popen``, ``asyncio.create_subprocess_exec``)
    after which the kernel sends the child ``sig`` when the spawning thread dies (Linux
    ``PR_SET_PDEATHSIG``; does nothing elsewhere). Call it in the parent, just before spawning."""
    return _die_with_parent(sig)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the caller retries if it is taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its parent's wait counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (monotonic clock)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class ManagedProcess:
    """A child process started with die-with-parent semantics and stopped on exit.

    ``argv`` is the command line; ``log_path`` receives its output; ``death_signal`` is what the
    kernel sends it when Holdfast dies (Linux ``PR_SET_PDEATHSIG``); ``env`` replaces the
    environment when given.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path | None = None,
        death_signal: int = signal.SIGTERM,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        #: What the kernel sends the child when its parent dies (SIGKILL for stateless servers,
        #: whose graceful shutdown could wait on a connection nobody will ever close).
        self.death_signal = death_signal
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid once spawned (kept after it exits), else None."""
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        """True while the spawned child has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the child (stdin closed, stdout and stderr appended to ``log_path`` or discarded).

        Raises:
            ServiceUnavailableError: the log cannot be opened or the binary cannot be run
                (not retryable: the caller runs degraded).
        """
        try:
            log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        except OSError as exc:
            raise ServiceUnavailableError(
                f"{self.name}: cannot open its log {self.log_path}: {exc}", retryable=False, service=self.name
            ) from exc
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file if log_file is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(self.death_signal),
                env=self.env,
                start_new_session=True,  # Ctrl+C in the TUI must not reach the child directly
            )
        except OSError as exc:  # a missing or non-executable binary: the caller runs degraded
            raise ServiceUnavailableError(
                f"{self.name} could not be started ({self.argv[0]}): {exc}", retryable=False, service=self.name
            ) from exc
        finally:
            if log_file is not None:
                log_file.close()
        with _live_lock:
            _live.add(self)
        log.info("started %s pid=%s", self.name, self.proc.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the child is still alive after ``timeout`` seconds; no-op if not running.

        Raises:
            subprocess.TimeoutExpired: the child survived SIGKILL for another ``timeout`` seconds.
        """
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        log.info("stopped %s pid=%s", self.name, proc.pid)

    def kill(self) -> None:
        """SIGKILL, as a person demoing an outage would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@atexit.register
def stop_all_children() -> None:
    """Stop every child still running (registered with ``atexit``); failures are logged, not raised."""
    with _live_lock:
        children = list(_live)
    for child in children:
        try:
            child.stop(timeout=3)
        except Exception:  # best effort at interpreter exit
            log.exception("could not stop %s", child.name)


class ManagedServer(Generic[AddressT]):
    """A loopback server child with a fixed port: start, restart on the same port, kill, stop.

    Subclasses give the command line (:meth:`argv`), a readiness probe (:meth:`ready`) and
    the address :meth:`start` returns (:meth:`address_for`). :meth:`start`
    blocks until ready; :meth:`astart` spawns in the event loop's thread and awaits
    readiness, so the UI stays responsive. Spawn from a thread that lives as long as the
    server should: the kernel stops the child when the thread that spawned it exits.
    """

    name = "server"
    service = "server"
    death_signal: int = signal.SIGTERM

    def __init__(self, *, port: int = 0, log_path: Path | None = None, startup_timeout: float = 10.0) -> None:
        self.port = port  # 0 until started: then the port it keeps across restarts
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self._proc: ManagedProcess | None = None

    # -- for subclasses
    def argv(self, port: int) -> list[str]:
        """The command line that starts the server on ``port`` (subclasses implement it)."""
        raise NotImplementedError

    def ready(self, port: int) -> bool:
        """Blocking readiness probe (short timeout)."""
        raise NotImplementedError

    def address_for(self, port: int) -> AddressT:
        """The address :meth:`start` returns for a server on loopback ``port`` (subclasses implement it)."""
        raise NotImplementedError

    def before_spawn(self) -> None:
        """Hook: create directories, find binaries; raise an AppError to refuse to start."""

    def after_start(self) -> None:
        """Hook: runs once the server answers."""

    # -- lifecycle
    @property
    def pid(self) -> int | None:
        """The running server's pid, or None when it is not running."""
        return self._proc.pid if self._proc and self._proc.running() else None

    def running(self) -> bool:
        """True while the server's process is alive (it may not answer yet)."""
        return self._proc is not None and self._proc.running()

    def start(self) -> AddressT:
        """Start (or restart on the same port); returns its address once the server answers.

        Blocks up to ``startup_timeout`` seconds per candidate port (three fresh ports on a
        first start, the same port on a restart).

        Raises:
            ServiceUnavailableError: it could not be started or never answered (the message
                quotes the last line of its log).
            AppError: :meth:`before_spawn` refused to start.
        """
        if self.running():
            return self.address_for(self.port)
        for port in self._candidate_ports():
            proc = self._spawn(port)
            settled = functools.partial(self._settled, proc, port)
            if wait_until(settled, self.startup_timeout) and proc.running():
                return self.address_for(self._started(proc, port))
            proc.stop(timeout=1)
        raise self._failure()

    async def astart(self) -> AddressT:
        """:meth:`start` without blocking the event loop (readiness probes run in a thread).

        Raises:
            ServiceUnavailableError: as :meth:`start`.
            asyncio.CancelledError: cancelled mid-start; the half-started child is stopped.
        """
        if self.running():
            return self.address_for(self.port)
        loop = asyncio.get_running_loop()
        for port in self._candidate_ports():
            proc = self._spawn(port)
            deadline = loop.time() + self.startup_timeout
            try:
                while proc.running() and loop.time() < deadline:
                    if await asyncio.to_thread(self.ready, port):
                        return self.address_for(self._started(proc, port))
                    await asyncio.sleep(0.02)
            except BaseException:
                # Cancelled mid-start (the app quit while booting): this child is not yet
                # self._proc, so stop() would never reach it.
                proc.stop(timeout=1)
                raise
            await asyncio.to_thread(proc.stop, 1)  # off the loop: the UI keeps drawing
        raise self._failure()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); the port is kept for a restart."""
        if self._proc is not None:
            self._proc.stop()

    def kill(self) -> None:
        """SIGKILL, as a person demoing an outage would."""
        if self._proc is not None:
            self._proc.kill()

    # -- internals
    def _candidate_ports(self) -> Iterator[int]:
        # A free port can be taken between probing and binding: try a few fresh ones,
        # but a restart keeps its port so clients and breakers see the same endpoint return.
        if self.port:
            yield self.port
            return
        for _ in range(3):
            yield free_port()

    def _settled(self, proc: ManagedProcess, port: int) -> bool:
        # Stop waiting as soon as the child answers or has already exited.
        return not proc.running() or self.ready(port)

    def _spawn(self, port: int) -> ManagedProcess:
        self.before_spawn()
        proc = ManagedProcess(self.name, self.argv(port), log_path=self.log_path, death_signal=self.death_signal)
        proc.spawn()
        return proc

    def _started(self, proc: ManagedProcess, port: int) -> int:
        self._proc = proc
        self.port = port
        self.after_start()
        return port

    def _failure(self) -> AppError:
        reason = self._tail_log() or "did not answer in time"
        return ServiceUnavailableError(f"{self.name} could not start: {reason}", service=self.service)

    def _tail_log(self) -> str:
        if self.log_path is None:
            return ""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-200:] if lines else ""
