"""One embedded redis-server per data dir, shared by every process that uses the data dir: real
processes (``tests.support.redis_user``) attach to it, and the test watches the real servers
through ``/proc``. The first starts it, later ones use it, the last one to leave stops it (or
not, with keep_running), and nobody ever deletes the pid file of a server another still uses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runtime.config import StorageError
from runtime.core.errors import ServiceUnavailableError
from runtime.core.procs import free_port, pid_alive
from runtime.state.embedded_redis import ping
from runtime.state.shared_redis import DataDirRedis, ServerRecord, read_pid_file
from tests.support.polling import wait_until
from tests.support.redis_user import RedisUser
from tests.support.storage import fill, need_tmpfs, read_only, redis_servers_of, tmpfs

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_dir(tmp_path: Path) -> Iterator[Path]:
    """The server directory of a fresh data dir; any server left in it is stopped after the test."""
    directory = tmp_path / "data" / "redis"
    yield directory
    for pid in redis_servers_of(directory) if directory.exists() else []:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda pid=pid: not pid_alive(pid), 10, f"redis-server {pid} to stop")


def _pid_file(directory: Path) -> ServerRecord | None:
    return read_pid_file(directory / "redis-server.pid")


def test_two_processes_share_one_server_and_the_first_to_leave_keeps_its_pid_file(redis_dir: Path) -> None:
    first = RedisUser(redis_dir)
    a = first.attached()
    second = RedisUser(redis_dir)
    b = second.attached()

    assert a["started_here"] is True and b["started_here"] is False
    assert (a["pid"], a["port"]) == (b["pid"], b["port"])
    assert redis_servers_of(redis_dir) == [a["pid"]]

    assert first.leave() == "left"
    # The server and its pid file are still there for the process still using them.
    assert redis_servers_of(redis_dir) == [a["pid"]] and ping("127.0.0.1", a["port"])
    assert _pid_file(redis_dir) == ServerRecord(a["pid"], "127.0.0.1", a["port"])

    assert second.leave() == "left"
    # The last one out stopped it and removed its pid file.
    assert redis_servers_of(redis_dir) == [] and not pid_alive(a["pid"])
    assert _pid_file(redis_dir) is None


def test_three_processes_starting_at_once_start_one_server(redis_dir: Path) -> None:
    users = [RedisUser(redis_dir) for _ in range(3)]
    seen = [u.attached() for u in users]

    assert len({(s["pid"], s["port"]) for s in seen}) == 1
    assert sum(s["started_here"] for s in seen) == 1
    assert redis_servers_of(redis_dir) == [seen[0]["pid"]]
    for user in users:
        user.leave()
    assert redis_servers_of(redis_dir) == []


def test_keep_running_leaves_the_server_to_the_next_process(redis_dir: Path) -> None:
    first = RedisUser(redis_dir, "--keep-running")
    a = first.attached()
    first.leave()
    assert redis_servers_of(redis_dir) == [a["pid"]]

    second = RedisUser(redis_dir)
    b = second.attached()
    assert b == {"pid": a["pid"], "port": a["port"], "started_here": False}
    second.leave()
    assert redis_servers_of(redis_dir) == []


def test_a_crashed_user_does_not_take_the_server_from_the_others(redis_dir: Path) -> None:
    crashing = RedisUser(redis_dir)
    a = crashing.attached()
    staying = RedisUser(redis_dir)
    assert staying.attached()["pid"] == a["pid"]
    crashing.kill()  # kill -9 of the process that started it: no detach ran

    # The watchdog looks twice a second: the server stays, because someone still uses it.
    later = RedisUser(redis_dir)
    assert later.attached()["pid"] == a["pid"] and ping("127.0.0.1", a["port"])
    later.leave()
    staying.leave()
    assert redis_servers_of(redis_dir) == [] and _pid_file(redis_dir) is None


def test_a_crashed_last_user_leaves_no_server_behind(redis_dir: Path) -> None:
    crashing = RedisUser(redis_dir)
    a = crashing.attached()
    crashing.kill()  # kill -9: no detach ran; the watchdog stops the server for it
    # The watchdog removes the pid file just after the server exits: wait for both.
    wait_until(
        lambda: not pid_alive(a["pid"]) and _pid_file(redis_dir) is None,
        10,
        "the watchdog to stop the orphaned server and remove its pid file",
    )
    assert redis_servers_of(redis_dir) == []


def test_keep_running_has_no_watchdog_so_a_crash_leaves_the_server_to_the_next_process(redis_dir: Path) -> None:
    crashing = RedisUser(redis_dir, "--keep-running")
    a = crashing.attached()
    crashing.kill()
    later = RedisUser(redis_dir)
    assert later.attached() == {"pid": a["pid"], "port": a["port"], "started_here": False}
    later.leave()  # without keep_running: the last one out stops it
    assert redis_servers_of(redis_dir) == []


def test_a_lost_pid_file_does_not_start_a_second_server_on_the_same_aof(redis_dir: Path) -> None:
    first = RedisUser(redis_dir)
    a = first.attached()
    (redis_dir / "redis-server.pid").unlink()  # an older version deleted it on exit

    second = RedisUser(redis_dir)
    assert second.attached()["pid"] == a["pid"]
    assert redis_servers_of(redis_dir) == [a["pid"]]
    assert _pid_file(redis_dir) == ServerRecord(a["pid"], "127.0.0.1", a["port"])  # written again
    first.leave()
    second.leave()


def test_a_stale_pid_file_naming_a_dead_or_foreign_process_is_replaced(redis_dir: Path) -> None:
    redis_dir.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for pid in (int(gone.stdout), os.getpid()):  # a dead pid, then a live process that is not Redis
        (redis_dir / "redis-server.pid").write_text(f"{pid} 127.0.0.1:1\n")
        user = RedisUser(redis_dir)
        seen = user.attached()
        assert seen["started_here"] is True and seen["pid"] != pid
        assert _pid_file(redis_dir) == ServerRecord(seen["pid"], "127.0.0.1", seen["port"])
        user.leave()
        assert redis_servers_of(redis_dir) == []


def test_a_server_that_does_not_answer_is_reported_not_doubled(redis_dir: Path) -> None:
    first = RedisUser(redis_dir)
    a = first.attached()
    os.kill(a["pid"], signal.SIGSTOP)  # frozen: alive, silent
    try:
        second = RedisUser(redis_dir, "--startup-timeout", "1")
        seen = second.attached()
        assert seen["type"] == "ServiceUnavailableError"
        assert f"(pid {a['pid']}, port {a['port']}) does not answer" in seen["error"]
        assert redis_servers_of(redis_dir) == [a["pid"]]
    finally:
        os.kill(a["pid"], signal.SIGCONT)
    second.leave()
    first.leave()
    assert redis_servers_of(redis_dir) == []


def test_a_server_killed_for_a_demo_is_restarted_on_its_port(redis_dir: Path) -> None:
    redis = DataDirRedis(redis_dir)
    address = redis.attach()
    try:
        old = redis.pid
        redis.kill()
        assert not redis.running()
        assert redis.restart() == address and redis.pid not in (None, old)
        assert redis_servers_of(redis_dir) == [redis.pid]
    finally:
        redis.detach()
    assert redis_servers_of(redis_dir) == []


def test_a_server_killed_under_its_users_comes_back_on_their_port_when_the_next_process_starts_it(
    redis_dir: Path,
) -> None:
    # The TUI runs; the server dies (kill -9); a CLI command starts it again. The TUI's client
    # still points at the old port: a server on any other port would leave it on the journal.
    first = RedisUser(redis_dir)
    a = first.attached()
    os.kill(a["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(a["pid"]), 10, "the killed redis-server to be gone")

    second = RedisUser(redis_dir)
    b = second.attached()

    assert b["started_here"] is True and b["pid"] != a["pid"]
    assert b["port"] == a["port"] and ping("127.0.0.1", a["port"])  # the first process's client finds it
    assert redis_servers_of(redis_dir) == [b["pid"]]
    assert _pid_file(redis_dir) == ServerRecord(b["pid"], "127.0.0.1", a["port"])
    second.leave()
    first.leave()
    assert redis_servers_of(redis_dir) == []


def test_a_dead_servers_port_taken_by_another_program_gives_a_new_port(redis_dir: Path) -> None:
    first = RedisUser(redis_dir)
    a = first.attached()
    os.kill(a["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(a["pid"]), 10, "the killed redis-server to be gone")
    with socket.socket() as squatter:
        # The dead server's port is busy for some milliseconds while its connections close.
        wait_until(lambda: _bound(squatter, a["port"]), 10, f"port {a['port']} to be free")
        squatter.listen()
        second = RedisUser(redis_dir)
        b = second.attached()
        assert b["started_here"] is True and b["port"] != a["port"] and ping("127.0.0.1", b["port"])
    second.leave()
    first.leave()
    assert redis_servers_of(redis_dir) == []


def test_two_data_dirs_on_one_configured_port_never_share_a_server(tmp_path: Path) -> None:
    # [redis].embedded_port set in a shared config: the second data dir's server cannot bind it,
    # and the first one's answers on it. The second must not take that one for its own (its
    # conversations went into the other data dir's AOF and vanished from its own).
    port = free_port()
    a = DataDirRedis(tmp_path / "a" / "redis", port=port)
    b = DataDirRedis(tmp_path / "b" / "redis", port=port)
    a.attach()
    try:
        with pytest.raises(ServiceUnavailableError) as caught:
            b.attach()
        assert caught.value.user_message() == (
            f"redis-server could not start in {tmp_path / 'b' / 'redis'}: port {port} "
            "([redis].embedded_port) is in use by another program; stop it, or choose another port (0: any free one)"
        )
        assert not b.attached and b.url == f"redis://127.0.0.1:{port}/0"
        assert redis_servers_of(tmp_path / "b" / "redis") == []
        assert _pid_file(tmp_path / "b" / "redis") is None
    finally:
        a.detach()
    assert redis_servers_of(tmp_path / "a" / "redis") == []


def _bound(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_a_server_that_could_not_start_has_no_url_and_raises_nothing(tmp_path: Path) -> None:
    # The Health panel reads every backend's url, also one that failed: a read-only data dir
    # crashed the TUI with a traceback here.
    need_tmpfs()
    with tmpfs(tmp_path / "ro") as mount:
        read_only(mount)
        redis, pinned = DataDirRedis(mount / "redis"), DataDirRedis(mount / "redis", port=6399)
        for server in (redis, pinned):
            with pytest.raises(StorageError):
                server.attach()
        assert (redis.url, redis.pid, redis.running()) == ("", None, False)
        assert pinned.url == "redis://127.0.0.1:6399/0"


def test_a_full_disk_costs_the_pid_file_not_the_server_and_its_data(tmp_path: Path) -> None:
    # No room for a pid file must not put every conversation out of reach (`holdfast
    # conversations list` printed nothing and exited 0): the server starts, serves what it holds,
    # is shared through /proc, and still stops when its last user leaves or crashes.
    need_tmpfs()
    with tmpfs(tmp_path / "full", size="16m") as mount:
        directory = mount / "redis"
        first = RedisUser(directory)
        redis.Redis(port=first.attached()["port"]).set("greeting", "hello")
        first.leave()
        fill(mount)

        second = RedisUser(directory)
        b = second.attached()
        assert "error" not in b and b["started_here"] is True
        assert redis.Redis(port=b["port"]).get("greeting") == b"hello"
        assert _pid_file(directory) is None
        third = RedisUser(directory)
        assert (third.attached()["pid"], third.attached()["started_here"]) == (b["pid"], False)

        second.leave()
        assert redis_servers_of(directory) == [b["pid"]]  # still used by the third
        third.kill()  # the last user crashes: the watchdog stops the server without a pid file
        wait_until(lambda: redis_servers_of(directory) == [], 15, "the watchdog to stop the server")


def test_a_read_only_data_dir_is_one_storage_error_naming_the_path(tmp_path: Path) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "ro") as mount:
        read_only(mount)
        redis = DataDirRedis(mount / "redis")
        with pytest.raises(StorageError) as caught:
            redis.attach()
        assert caught.value.user_message() == (
            f"redis: cannot create the embedded Redis directory {mount / 'redis'}: the file system is read-only; "
            "free some space or make it writable, or choose another data dir with HOLDFAST_DATA_DIR"
        )
        assert not redis.attached


def test_no_binary_is_service_unavailable(redis_dir: Path) -> None:
    with pytest.raises(ServiceUnavailableError, match="could not be started"):
        DataDirRedis(redis_dir, binary="/nonexistent/redis-server").attach()
    assert redis_servers_of(redis_dir) == []
