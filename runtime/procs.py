"""Child processes that must never outlive Holdfast (embedded redis-server, demo LLM).

Three layers keep them from becoming orphans: the kernel sends the child SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``, Linux), an ``atexit`` hook stops every child still
running, and :meth:`ManagedProcess.stop` is called on orderly shutdown.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the caller retries if it is taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
    """A child process started with die-with-parent semantics and stopped on exit."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe enough
                env=self.env,
                start_new_session=True,  # Ctrl+C in the TUI must not reach the child directly
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        with _live_lock:
            _live.add(self)
        log.info("started %s pid=%s", self.name, self.proc.pid)

    def stop(self, timeout: float = 5.0) -> None:
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
    with _live_lock:
        children = list(_live)
    for child in children:
        try:
            child.stop(timeout=3)
        except Exception:  # best effort at interpreter exit
            log.exception("could not stop %s", child.name)
