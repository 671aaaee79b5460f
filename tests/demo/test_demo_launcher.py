"""The demo server's lifecycle: a child process on loopback, pid shown, restart on the same
port, no orphans; and the CLI entry point's refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.core.errors import ValidationError
from runtime.demo.launcher import DemoLLMServer, port_open
from runtime.demo.server import bind_socket, run_cli


@pytest.mark.slow
def test_start_kill_restart_on_the_same_port_then_stop(tmp_path: Path) -> None:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log", down=True)
    address = server.start()
    try:
        first_pid = server.pid
        assert first_pid is not None and server.url == f"http://127.0.0.1:{address.port}/v1"
        assert "--down" in server.argv(address.port)  # fault flags reach the child
        server.kill()
        assert server.pid is None and not port_open("127.0.0.1", address.port)
        assert server.start().port == address.port
        assert server.pid not in (None, first_pid)
    finally:
        server.stop()
    assert not server.running() and not port_open("127.0.0.1", address.port)
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)


def test_unknown_fault_is_refused_before_starting() -> None:
    with pytest.raises(ValidationError, match="unknown demo fault"):
        DemoLLMServer(explode=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "0.0.0.0"], "refusing to bind 0.0.0.0: the demo server is loopback only"),
        (["--error-rate", "3"], "fault error_rate must be between 0 and 1, got 3.0"),
        (["--port", "99999"], "argument --port: 99999 is not a port (0-65535; 0 picks a free one)"),
        (["--port", "-5"], "argument --port: -5 is not a port (0-65535; 0 picks a free one)"),
        (["--tokens-per-second", "-1"], "argument --tokens-per-second: must be a number >= 0 (0: unpaced), got -1"),
        (["--tokens-per-second", "nan"], "argument --tokens-per-second: must be a number >= 0 (0: unpaced), got nan"),
        (["--max-body-bytes", "0"], "argument --max-body-bytes: must be at least 1, got 0"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    # --port 99999 used to end in an OverflowError traceback; --tokens-per-second -1 was served.
    assert run_cli(argv) == 2
    assert capsys.readouterr().err == f"holdfast demo-llm: {message}. See 'holdfast demo-llm --help'.\n"


def test_cli_reports_a_port_in_use_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert run_cli(["--port", str(port)]) == 1
        assert capsys.readouterr().err == f"holdfast demo-llm: cannot bind 127.0.0.1:{port}: Address already in use\n"
    finally:
        taken.close()


@pytest.mark.slow
def test_the_server_dies_with_its_parent_even_mid_stream(tmp_path: Path) -> None:
    """SIGKILL the process that launched the server while a request hangs on it: the server
    must not outlive it (a graceful shutdown would wait for that request forever)."""
    import signal
    import subprocess
    import sys

    from runtime.core.procs import pid_alive
    from tests.support.polling import wait_until

    script = tmp_path / "parent.py"
    script.write_text(
        "import threading, time, httpx\n"
        "from runtime.demo.launcher import DemoLLMServer\n"
        "s = DemoLLMServer(hang=True)\n"
        "s.start()\n"
        "def hang():\n"
        "    try:\n"
        "        httpx.post(s.url + '/chat/completions', timeout=300, json={'model': 'm', 'stream': True,\n"
        "                   'messages': [{'role': 'user', 'content': 'hi'}]})\n"
        "    except Exception:\n"
        "        pass\n"
        "threading.Thread(target=hang, daemon=True).start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        wait_until(lambda: pid_alive(child), 5, "the demo server to start")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not pid_alive(child), 10, "the demo server to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
