"""Managed child processes: a server that cannot start says so as an AppError, and a start
that is cancelled half-way leaves no child running."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from runtime.core.errors import ServiceUnavailableError
from runtime.core.procs import ManagedProcess, ManagedServer


class _NeverReady(ManagedServer):
    """A real child (a sleeping Python) that never answers its readiness probe."""

    name = "never-ready"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.spawned: list[ManagedProcess] = []
        self.spawned_event = asyncio.Event()

    def argv(self, port: int) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]

    def ready(self, port: int) -> bool:
        return False

    def _spawn(self, port: int) -> ManagedProcess:
        proc = super()._spawn(port)
        self.spawned.append(proc)
        self.spawned_event.set()
        return proc


class _MissingBinary(ManagedServer):
    name = "missing"

    def argv(self, port: int) -> list[str]:
        return ["/nonexistent/holdfast-no-such-server"]

    def ready(self, port: int) -> bool:
        return False


async def test_a_missing_binary_is_a_service_unavailable_error(tmp_path: Path) -> None:
    server = _MissingBinary(port=1, log_path=tmp_path / "missing.log")
    with pytest.raises(ServiceUnavailableError, match="could not be started"):
        await server.astart()
    assert not server.running()


async def test_cancelled_start_stops_the_child_it_spawned(tmp_path: Path) -> None:
    server = _NeverReady(port=1, startup_timeout=60.0)
    task = asyncio.create_task(server.astart())
    await asyncio.wait_for(server.spawned_event.wait(), timeout=10)
    child = server.spawned[0]
    assert child.running()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not child.running()
