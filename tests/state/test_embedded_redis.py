"""The embedded redis-server: starts, persists, restarts on its port, never outlives the app."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.core.procs import pid_alive
from runtime.state.embedded_redis import EmbeddedRedis, ping
from tests.support.polling import wait_until


async def test_start_kill_restart_keeps_port_and_data(tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    server = EmbeddedRedis(tmp_path, persist=True)
    address = await server.astart()
    assert ping(address.host, address.port)
    assert server.pid_file.read_text().split()[0] == str(server.pid)
    client = aioredis.from_url(address.url)
    await client.set("k", "v")
    await client.execute_command("BGREWRITEAOF")
    await client.aclose()
    wait_until(lambda: (tmp_path / "appendonly.aof").exists(), 5, "appendonly.aof to be written")

    first_pid = server.pid
    server.kill()
    assert not ping(address.host, address.port)
    again = server.start()
    assert again.port == address.port and server.pid != first_pid
    client = aioredis.from_url(again.url)
    assert await client.get("k") == b"v"
    await client.aclose()
    server.stop()
    assert not server.running() and not server.pid_file.exists()


def test_missing_binary_is_one_clear_error(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, binary=str(tmp_path / "no-such-redis-server"))
    with pytest.raises(Exception) as info:
        server.start()
    assert "no-such-redis-server" in str(info.value) or "could not start" in str(info.value)


def _drain(master: int) -> bool:
    """Read what the app drew so it never blocks on a full pty; always False (for polling)."""
    while select.select([master], [], [], 0)[0]:
        try:
            os.read(master, 65536)
        except OSError:
            break
    return False


def _launch_app(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `holdfast` in a pseudo-terminal with a private data dir; return it and its redis pid."""
    master, slave = pty.openpty()
    env = dict(
        os.environ,
        HOLDFAST_DATA_DIR=str(tmp_path / "data"),
        HOLDFAST_LOG_DIR=str(tmp_path / "logs"),
        TERM="xterm-256color",
        COLUMNS="100",
        LINES="30",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    pid_file = tmp_path / "data" / "redis" / "redis-server.pid"

    def started() -> bool:
        _drain(master)
        return pid_file.exists() and pid_file.read_text().strip() != ""

    wait_until(started, 30, "the app to start its embedded redis-server")
    redis_pid = int(pid_file.read_text().split()[0])
    assert pid_alive(redis_pid)
    return proc, master, pid_file


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_orphan_redis_after_the_app_dies(tmp_path: Path, sig: signal.Signals) -> None:
    proc, master, pid_file = _launch_app(tmp_path)
    redis_pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(proc.pid, sig)
        wait_until(lambda: _drain(master) or proc.poll() is not None, 20, f"the app to exit on {sig.name}")
        wait_until(lambda: not pid_alive(redis_pid), 10, f"redis-server {redis_pid} to die with the app ({sig.name})")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        if pid_alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)
