"""Running ``holdfast`` in tests: the real console script in a subprocess, as a user runs it.

:func:`run_script` runs one command to its end; :func:`start_script` starts a long-running one
(``demo-llm``) and :func:`stop` ends it and checks it is gone. Both inherit the test's
environment, which ``isolated_dirs`` (tests/conftest.py) points at a temp HOME and XDG dirs.
:func:`command_paths` lists every command of the tree, for tests that cover each one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.core.procs import pid_alive
from tests.support.polling import wait_until

#: The console script ``pip install -e .`` put beside this interpreter (``[project.scripts]``).
HOLDFAST = Path(sysconfig.get_path("scripts")) / "holdfast"

#: Seconds a command may take before the test fails (a cold start loads LanceDB and the model).
COMMAND_TIMEOUT = 60.0


@dataclass
class Run:
    """The outcome of one ``holdfast`` command: exit code, stdout and stderr (text)."""

    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        """stdout parsed as JSON lines (blank lines skipped); raises ValueError on a non-JSON line."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # No colour or terminal-width games in captured help and error text.
    return {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120", **(extra or {})}


def run_script(*argv: str, env: Mapping[str, str] | None = None, timeout: float = COMMAND_TIMEOUT) -> Run:
    """Run ``holdfast *argv`` to its end with ``env`` added to the environment; never raises on a
    non-zero exit (``subprocess.TimeoutExpired`` after ``timeout`` seconds)."""
    done = subprocess.run(
        [str(HOLDFAST), *argv], capture_output=True, text=True, env=_env(env), timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(done.returncode, done.stdout, done.stderr)


def start_script(*argv: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``holdfast *argv`` in its own session (stdout and stderr piped); end it with :func:`stop`."""
    return subprocess.Popen(
        [str(HOLDFAST), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(env),
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 10.0) -> Run:
    """Send ``sig`` to a started command, wait up to ``timeout`` seconds for it to exit (then
    SIGKILL it and fail), and return its outcome. The process is gone when this returns."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"holdfast (pid {proc.pid}) ignored signal {sig} for {timeout:g} s") from None
    wait_until(lambda: not pid_alive(proc.pid), 5, f"pid {proc.pid} to be gone")
    return Run(proc.returncode, out, err)


def command_paths() -> list[tuple[str, ...]]:
    """Every group and command of ``holdfast`` as its words, e.g. ``("memory", "add")``."""
    from runtime.cli.main import build_command

    paths: list[tuple[str, ...]] = []

    def walk(command: object, prefix: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(build_command(), ())
    return paths
