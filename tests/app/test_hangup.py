"""Quit and hang-ups end cleanly (issue 16, cases 15 and 17), on a real pty with the real entry
point (``python -m app``) in a subprocess: HOME and the XDG dirs in tmp, its own embedded
redis-server and demo LLM server as children.

* Ctrl+Q quits and leaves no child behind.
* Closing the terminal (the pty master) while a reply streams - what ``tmux kill-session`` or an
  SSH drop does: SIGHUP with the pty already gone -, SIGTERM and Ctrl+Q all end the process, with
  the partial reply saved and marked interrupted, and no child left; also when Redis is slow to
  take that last write.

How long each takes is measured by ``tests/bench/bench_quit.py`` (timings are not asserted here).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.cli import run_script
from tests.support.polling import wait_until

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.slow]

ROWS, COLS = 40, 140
#: Seconds the app may take to start on a busy 2-core machine (LanceDB, redis-server, demo LLM).
START_TIMEOUT = 60.0
#: Seconds Redis refuses writes while the app quits mid-stream (within the exit's save budget).
SLOW_SAVE = 0.6


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Terminal:
    """``python -m app`` (or ``argv``) on a pty: the master end is the terminal the test reads
    and types into."""

    def __init__(self, env: dict[str, str], argv: list[str] | None = None) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))

        def controlling_tty() -> None:  # the pty becomes the child's terminal: closing it hangs up
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        # preexec_fn: the only way for the child to take the pty as its controlling terminal.
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "app"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=controlling_tty,
        )
        os.close(slave)
        self.screen = b""
        self.closed = False

    def read(self, seconds: float = 0.05) -> None:
        """Drain what the app wrote for up to ``seconds``."""
        if self.closed:
            return
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            try:
                self.screen += os.read(self.master, 1 << 16)
            except OSError:
                pass

    def wait_output(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.screen:
            assert self.proc.poll() is None, f"the app exited ({self.proc.returncode}): {self.screen[-2000:]!r}"
            assert time.monotonic() < deadline, f"no {needle!r} on screen after {timeout:g} s"
            self.read()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.master)

    def wait_exit(self, timeout: float) -> float:
        """Seconds until the process exited (fails after ``timeout``), draining output meanwhile."""
        started = time.monotonic()
        while self.proc.poll() is None:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"still running {elapsed:.1f} s after the exit began")
            if self.closed:
                time.sleep(0.01)  # the poll interval: nothing to read once the terminal is gone
            else:
                self.read(0.01)
        return time.monotonic() - started


@pytest.fixture
def terminal_env(isolated_dirs: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(
        TERM="xterm-256color",
        COLUMNS=str(COLS),
        LINES=str(ROWS),
        HOLDFAST_DATA_DIR=str(tmp_path / "data"),
        HOLDFAST_MEMORY__EMBEDDING_PROVIDER="lexical",
        HOLDFAST_LLM__DEMO_TOKENS_PER_SECOND="40",
        HOLDFAST_AGENT__USER="tester",
    )
    return env


@pytest.fixture
def terminal(terminal_env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(terminal_env)
    yield term
    term.close()
    if term.proc.poll() is None:
        term.proc.kill()
        term.proc.wait()


def _started(term: Terminal) -> set[int]:
    """Wait for the composer, both embedded servers and the end of the boot (the header then
    names the demo server's real URL); returns the app's child pids."""
    term.wait_output("Message Holdfast", START_TIMEOUT)
    term.wait_output("127.0.0.1:", START_TIMEOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        children = _children(term.proc.pid)
        names = {Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children if _alive(pid)}
        if any(b"redis-server" in n for n in names) and any(b"runtime.demo.server" in n for n in names):
            return children
        assert time.monotonic() < deadline, "the embedded servers did not start"
        term.read(0.1)


def _no_child_left(children: set[int]) -> None:
    wait_until(lambda: not any(_alive(pid) for pid in children), 5.0, "the app's children to exit")


def _stream(term: Terminal) -> None:
    """Send a long question and wait until its reply is streaming."""
    term.type("tell me a long story\r")
    term.wait_output("streaming", START_TIMEOUT)
    term.read(1.0)  # some of the reply arrives


def _saved_partial(env: dict[str, str]) -> str:
    """The stored conversation as Markdown, read back through the real CLI."""
    listed = run_script("conversations", "list", env=env)
    assert listed.code == 0, listed.err
    conversations = listed.json_lines()
    assert len(conversations) == 1, conversations
    shown = run_script("conversations", "show", str(conversations[0]["id"]), env=env)
    assert shown.code == 0, shown.err
    return shown.out


def test_ctrl_q_quits_and_leaves_no_child(terminal: Terminal) -> None:
    # How long it takes (idle and mid-stream, next to a bare Textual app) is measured by
    # tests/bench/bench_quit.py; here only that it ends, cleanly, with nothing left behind.
    children = _started(terminal)
    terminal.type("\x11")  # Ctrl+Q
    terminal.wait_exit(10.0)
    assert terminal.proc.returncode == 0, terminal.screen[-3000:].decode(errors="replace")
    _no_child_left(children)


@pytest.mark.parametrize("how", ["terminal closed", "SIGTERM", "Ctrl+Q"])
def test_a_hang_up_mid_stream_saves_the_partial_reply_and_exits(
    terminal: Terminal, terminal_env: dict[str, str], how: str
) -> None:
    children = _started(terminal)
    _stream(terminal)
    if how == "terminal closed":
        terminal.close()  # the kernel sends SIGHUP; every later write to the terminal fails
    elif how == "SIGTERM":
        terminal.proc.send_signal(signal.SIGTERM)
    else:
        terminal.type("\x11")
    terminal.wait_exit(10.0)  # the exit watchdog ends it within 2 s at worst (bench_quit.py times it)
    _no_child_left(children)
    shown = _saved_partial(terminal_env)
    assert "tell me a long story" in shown
    assert "⚠ interrupted" in shown, shown[-1500:]


def test_quit_waits_for_the_partial_reply_to_be_saved(terminal_env: dict[str, str], redis_url: str) -> None:
    # The process ends (os._exit) as soon as the app says its data is safe, without the event
    # loop's teardown: the partial reply must be saved by then even when Redis is slow to take
    # the write. Writes are paused on the real server (CLIENT PAUSE ... WRITE) for less than the
    # exit's save budget.
    env = {**terminal_env, "REDIS_URL": redis_url}
    term = Terminal(env)
    try:
        term.wait_output("Message Holdfast", START_TIMEOUT)
        term.wait_output("127.0.0.1:", START_TIMEOUT)
        _stream(term)
        client = redis.Redis.from_url(redis_url)
        try:
            client.execute_command("CLIENT", "PAUSE", int(SLOW_SAVE * 1000), "WRITE")
        finally:
            client.close()
        term.type("\x11")  # Ctrl+Q
        term.wait_exit(10.0)
        shown = _saved_partial(env)
        assert "tell me a long story" in shown
        assert "⚠ interrupted" in shown, shown[-1500:]
    finally:
        term.close()
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
