"""Two and three ``holdfast`` processes on one data dir, on embedded defaults (no Redis URL), share
the data dir's one redis-server: the real console script, a real demo LLM, a real data dir. The
test watches the redis-server processes of the data dir through ``/proc`` while they run.

Done when (issue 15): three parallel CLI writers into one conversation keep every message once,
in per-writer order, with no repeated sequence number; one server serves them all; the pid file
of the server is intact while anyone uses it and gone after the last one leaves."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.demo.launcher import DemoLLMServer
from runtime.state.shared_redis import read_pid_file
from tests.support.cli import Run, run_script, start_script, stop
from tests.support.polling import wait_until
from tests.support.storage import embedded_env, redis_servers_of

pytestmark = pytest.mark.slow

CONV = "conv_0123456789abcdef01234567"


class ServerWatch:
    """Polls the redis-server processes of a directory in a thread; remembers every pid seen and
    the most that ran at the same time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pids: set[int] = set()
        self.most_at_once = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = redis_servers_of(self.directory) if self.directory.exists() else []
            self.pids.update(now)
            self.most_at_once = max(self.most_at_once, len(now))
            self._stop.wait(0.02)

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def env(data_dir: Path, demo_llm: DemoLLMServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Embedded defaults on the test's data dir; every process logs to one file; a turn may wait
    long for another process's turn (the suite shares two cores with other work)."""
    yield {
        **embedded_env(data_dir, demo_llm.url),
        "HOLDFAST_LOGGING__FILE": str(tmp_path / "holdfast.log"),
        "HOLDFAST_AGENT__TURN_LOCK_TIMEOUT": "120",
    }
    # The last process out stops the server (a killed one's watchdog does, within a second).
    wait_until(lambda: redis_servers_of(data_dir / "redis") == [], 15, "the data dir's server to stop")


def _export(env: dict[str, str]) -> list[dict[str, object]]:
    run = run_script("--user", "alice", "conversations", "export", CONV, "--format", "json", env=env)
    assert run.code == 0, run.err
    messages: list[dict[str, object]] = json.loads(run.out)["messages"]
    return messages


def _server_lines(log_file: Path) -> list[str]:
    lines = [json.loads(line)["message"] for line in log_file.read_text().splitlines()]
    return [line for line in lines if "the redis-server of" in line and line.startswith(("started", "using"))]


def _check_history(messages: list[dict[str, object]], writers: dict[str, int]) -> None:
    """Every message once, seqs 0..n-1 without a repeat, each writer's messages in its order, and
    each answer right after its question (the turn lock held across processes)."""
    assert [m["seq"] for m in messages] == list(range(len(messages)))
    users = [str(m["content"]) for m in messages if m["role"] == "user"]
    expected = {f"{name} says {i}" for name, count in writers.items() for i in range(count)}
    assert sorted(users) == sorted(expected) and len(users) == len(expected)
    for name, count in writers.items():
        assert [u for u in users if u.startswith(f"{name} ")] == [f"{name} says {i}" for i in range(count)]
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert question["role"] == "user" and answer["role"] == "assistant"
        assert f'You said: "{question["content"]}"' in str(answer["content"])


# 10 commands (9 chats, then the export), 5-8 s each on 2 loaded cores; the chats take turns on
# one conversation's lock, so they add up even from 3 threads. 20 s per command.
@pytest.mark.timeout(10 * 20)
def test_three_parallel_writers_into_one_conversation_keep_every_message_once_in_order(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    writers = {"ann": 3, "bob": 3, "cid": 3}
    with ServerWatch(data_dir / "redis") as watch:
        failures = _write_in_parallel(writers, env)

    assert failures == []
    assert watch.most_at_once == 1  # never two servers on one AOF
    lines = _server_lines(tmp_path / "holdfast.log")
    started = [line for line in lines if line.startswith("started")]
    assert len(lines) == sum(writers.values()) and len(started) == len(watch.pids) >= 1
    _check_history(_export(env), writers)


@pytest.mark.timeout(7 * 20)
def test_three_writers_while_a_tui_holds_the_data_dir_use_its_one_server(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    from tests.support.redis_user import RedisUser

    tui = RedisUser(data_dir / "redis")  # a long-lived Holdfast process on the data dir
    held = tui.attached()
    writers = {"ann": 2, "bob": 2, "cid": 2}
    try:
        with ServerWatch(data_dir / "redis") as watch:
            failures = _write_in_parallel(writers, env)
        assert failures == []
        assert watch.pids == {held["pid"]}  # one server pid for every process
        assert all(line.startswith("using") for line in _server_lines(tmp_path / "holdfast.log"))
        assert read_pid_file(data_dir / "redis" / "redis-server.pid").pid == held["pid"]  # type: ignore[union-attr]
        _check_history(_export(env), writers)
    finally:
        tui.leave()


def _write_in_parallel(writers: dict[str, int], env: dict[str, str]) -> list[Run]:
    """One thread per writer, each running ``holdfast chat`` for its messages one after the other;
    returns the runs that failed."""
    failures: list[Run] = []

    def write(name: str) -> None:
        for i in range(writers[name]):
            run = run_script(
                "--user", "alice", "chat", "--conversation", CONV, f"{name} says {i}", env=env, timeout=180
            )  # fmt: skip
            if run.code != 0:
                failures.append(run)

    threads = [threading.Thread(target=write, args=(name,)) for name in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.timeout(5 * 20)
def test_a_second_process_leaving_first_keeps_the_servers_pid_file_for_the_one_still_running(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # The first process streams a long story at 3 tokens/s: it is mid-turn for minutes, until the
    # test interrupts it (Ctrl-C), so the second one surely starts, uses the server and exits first.
    slow = DemoLLMServer(tokens_per_second=3, log_path=tmp_path / "slow-demo.log")
    slow.start()
    pid_file = data_dir / "redis" / "redis-server.pid"
    try:
        first = start_script(
            "--user", "alice", "chat", "--conversation", CONV, "ann says: tell me a long story",
            env={**env, "HOLDFAST_LLM__BASE_URL": slow.url},
        )  # fmt: skip
        wait_until(lambda: read_pid_file(pid_file) is not None, 60, "the first process to start the server")
        server = read_pid_file(pid_file)
        assert server is not None

        second = run_script(
            "--user", "alice", "chat", "--conversation", "conv_" + "9" * 24, "bob says 0", env=env, timeout=120
        )  # fmt: skip

        assert second.code == 0, second.err
        assert first.poll() is None, "the first process should still be streaming its long story"
        # The second one left; the server and its pid file are intact for the first.
        assert read_pid_file(pid_file) == server and redis_servers_of(data_dir / "redis") == [server.pid]
        interrupted = stop(first, signal.SIGINT, timeout=60)
        assert interrupted.code == 130, interrupted.err
    finally:
        slow.stop()
    # The first, now the last one out, stopped the server and removed its pid file.
    assert redis_servers_of(data_dir / "redis") == [] and read_pid_file(pid_file) is None
    # What both wrote is in the AOF: later processes find it.
    assert [m["content"] for m in _export(env) if m["role"] == "user"] == ["ann says: tell me a long story"]
