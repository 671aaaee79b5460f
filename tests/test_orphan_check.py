"""The end-of-session orphan check (tests/support/orphans.py) fails a run that leaves a server
running, names it, and cleans it up; a server a test stops is not reported."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from runtime.core.procs import pid_alive
from tests.support.polling import wait_until

#: Each test runs a whole inner pytest session in a subprocess.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

LEAKY_TESTS = """
import os
import subprocess
import sys
from pathlib import Path

from runtime.core.procs import free_port
from runtime.demo.launcher import DemoLLMServer
from runtime.state.embedded_redis import EmbeddedRedis, find_redis_server

PIDS = Path(os.environ["LEAK_PIDS"])


def test_leaks_a_demo_server(tmp_path):
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log")
    server.start()
    (PIDS / "demo").write_text(str(server.pid))


def test_stops_its_redis_server(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", persist=False)
    server.start()
    (PIDS / "stopped").write_text(str(server.pid))
    server.stop()


def test_orphans_a_redis_server(tmp_path):
    # A parent that starts redis-server in its own session and exits: init adopts the server,
    # which is no longer a descendant of pytest, only recognisable by its --dir in this run.
    launcher = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.argv[1], '--bind', '127.0.0.1', '--port', sys.argv[2], '--save', '', "
        "'--dir', sys.argv[3]], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )
    argv = [sys.executable, "-c", launcher, find_redis_server(), str(free_port()), str(tmp_path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    (PIDS / "orphan").write_text(out.stdout.strip())
"""


def test_a_run_that_leaves_servers_running_fails_and_names_them(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    monkeypatch.setenv("LEAK_PIDS", str(pids_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    leaked: list[int] = []
    try:
        result = pytester.runpytest_subprocess("-p", "tests.support.orphans", "-p", "no:cacheprovider", timeout=120)
        leaked = [int((pids_dir / name).read_text()) for name in ("demo", "orphan") if (pids_dir / name).exists()]
        stopped = int((pids_dir / "stopped").read_text())
        result.assert_outcomes(passed=3)
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
        assert len(leaked) == 2
        out = result.stdout.str()
        result.stdout.fnmatch_lines(["*2 server(s) left running by tests (now killed)*"])
        demo_line = next(line for line in out.splitlines() if line.startswith(f"pid {leaked[0]}:"))
        assert "runtime.demo.server" in demo_line and "test_leaks_a_demo_server" in demo_line
        orphan_line = next(line for line in out.splitlines() if line.startswith(f"pid {leaked[1]}:"))
        assert "redis-server" in orphan_line
        assert f"pid {stopped}:" not in out
        for pid in leaked:
            wait_until(lambda pid=pid: not pid_alive(pid), 10, f"leftover server {pid} to be killed by the check")
    finally:
        for pid in leaked:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_clean_run_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_clean="def test_nothing_started():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "tests.support.orphans", "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "left running" not in result.stdout.str()
