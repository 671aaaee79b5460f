"""A pytest plugin that fails the run when a test leaves a redis-server or demo LLM server running.

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``). When the session
ends, after every fixture (session-scoped ones included) has been torn down, it looks for this
run's servers (:func:`leftover_servers`), gives them a moment to exit, then reports each one
still alive (pid, command line, the test running when it started), kills it, and sets the exit
status to "tests failed". A process counts as this run's when it descends
from the pytest process, or when its command line, working directory or environment names one
of the run's temp dirs (tests point ``HOME`` and the XDG dirs there, and children inherit them,
so even a server re-parented to init after its parent was killed is recognised). Processes of
other runs on the same machine are not matched. Linux only (``/proc``); elsewhere it finds none.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.polling import WaitTimeout, wait_until

#: The servers tests start: the embedded redis-server (any path, title rewritten or not), the
#: demo LLM server module, and MCP servers (the test servers, mcp-server-time, holdfast mcp serve).
SERVER_CMDLINE = re.compile(
    r"(?:^|/)redis-server(?:\s|$)|\bruntime\.demo\.server\b"
    r"|tests/mcp/servers/|\bmcp-server-time\b|\bholdfast mcp serve\b"
)

_PROC = Path("/proc")


@dataclass(frozen=True)
class Leftover:
    """A server process still alive: its ``pid``, its command line, and the test that was
    running when it was started (pytest's ``PYTEST_CURRENT_TEST``, inherited; "" if unknown)."""

    pid: int
    cmdline: str
    started_by: str

    def describe(self) -> str:
        """One line for the failure report: pid, command line, and the test that started it."""
        by = f" (started during {self.started_by})" if self.started_by else ""
        return f"pid {self.pid}: {self.cmdline}{by}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone, or not ours to read
        return b""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc/PID/stat, or None if the process is gone."""
    raw = _read(_PROC / str(pid) / "stat").decode(errors="replace")
    # The command name is in parentheses and may contain spaces or parentheses itself.
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 2:
        return None
    return fields[0], int(fields[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor:
            return True
        stat = _stat(pid)
        if stat is None:
            return False
        pid = stat[1]
        seen += 1
    return False


def _under(value: str, dirs: Sequence[str]) -> bool:
    return any(value == d or d + os.sep in value for d in dirs)


def _environ(pid: int) -> dict[str, str]:
    pairs = (item.partition(b"=") for item in _read(_PROC / str(pid) / "environ").split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _cwd(pid: int) -> str:
    try:
        return os.readlink(_PROC / str(pid) / "cwd")
    except OSError:
        return ""


def _pids() -> Iterable[int]:
    try:
        names = os.listdir(_PROC)
    except OSError:
        return []
    return (int(name) for name in names if name.isdigit())


def leftover_servers(root_pid: int, run_dirs: Sequence[Path]) -> list[Leftover]:
    """Live (not zombie) redis-server and demo LLM server processes started by this run:
    descendants of ``root_pid`` (the pytest process), or processes whose command line, working
    directory or environment mentions one of ``run_dirs`` (the run's temp dirs). Never raises
    for a process that vanishes or cannot be read; it is skipped."""
    dirs = [str(d) for d in run_dirs]
    found: list[Leftover] = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        args = [a.decode(errors="replace") for a in _read(_PROC / str(pid) / "cmdline").split(b"\0") if a]
        cmdline = " ".join(args)
        if not SERVER_CMDLINE.search(cmdline):
            continue
        stat = _stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        env = _environ(pid)
        ours = (
            _descends_from(pid, root_pid)
            or any(_under(arg, dirs) for arg in args)
            or _under(_cwd(pid), dirs)
            or any(_under(value, dirs) for value in env.values())
        )
        if ours:
            found.append(Leftover(pid, cmdline, env.get("PYTEST_CURRENT_TEST", "")))
    return found


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def still_alive(leftovers: Sequence[Leftover], grace: float) -> list[Leftover]:
    """Those of ``leftovers`` still alive after up to ``grace`` seconds (a server told to stop,
    or whose parent just died, may take a moment to exit)."""
    try:
        wait_until(lambda: not any(_alive(p.pid) for p in leftovers), grace, "leftover servers to exit")
    except WaitTimeout:
        pass
    return [p for p in leftovers if _alive(p.pid)]


def kill(leftovers: Iterable[Leftover]) -> None:
    """SIGKILL each leftover so a failed run does not leave servers on the machine."""
    for leftover in leftovers:
        try:
            os.kill(leftover.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


#: Seconds a server may take to exit after the last fixture stopped it before it counts as left.
GRACE = 5.0

_RUN_DIRS = pytest.StashKey[list[Path]]()


@pytest.fixture(autouse=True, scope="session")
def _remember_run_dirs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Record this run's temp root so the end-of-session check recognises servers started there."""
    request.config.stash[_RUN_DIRS] = [tmp_path_factory.getbasetemp()]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    """After every fixture is torn down: report, kill and fail the run on any leftover server."""
    found = leftover_servers(os.getpid(), session.config.stash.get(_RUN_DIRS, []))
    left = still_alive(found, GRACE)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", f"{len(left)} server(s) left running by tests (now killed)", red=True)
        for leftover in left:
            reporter.write_line(leftover.describe())
        reporter.stats.setdefault("left running", []).extend(left)
    kill(left)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
