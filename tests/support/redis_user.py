"""A process that uses a data dir's embedded Redis the way a Holdfast process does, for the tests
of :mod:`runtime.state.shared_redis`: ``python -m tests.support.redis_user DIR [--keep-running]
[--startup-timeout S]`` attaches, prints one JSON line (``pid``, ``port``, ``started_here``, or
``error``), waits for a line on stdin, detaches, prints ``left`` and exits.

:class:`RedisUser` starts and drives one from a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from runtime.core.errors import AppError

ROOT = Path(__file__).resolve().parents[2]


class RedisUser:
    """One ``tests.support.redis_user`` process: :meth:`attached` reads what it printed,
    :meth:`leave` makes it detach and exit."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.redis_user", str(directory), *extra],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._attached: dict[str, Any] | None = None

    def attached(self, timeout: float = 30.0) -> dict[str, Any]:
        """What the process printed once attached (``pid``, ``port``, ``started_here``) or ``error``."""
        if self._attached is None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line:
                _, err = self.proc.communicate(timeout=timeout)
                raise AssertionError(f"redis_user exited before attaching: {err}")
            self._attached = json.loads(line)
        return self._attached

    def leave(self, timeout: float = 30.0) -> str:
        """Tell it to detach; returns what it printed after (``left``) once it has exited."""
        out, err = self.proc.communicate("\n", timeout=timeout)
        assert self.proc.returncode == 0, err
        return out.strip()

    def kill(self) -> None:
        """SIGKILL it (a crash: no detach runs)."""
        self.proc.kill()
        self.proc.communicate(timeout=10)


def main() -> int:
    from runtime.state.shared_redis import DataDirRedis

    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--keep-running", action="store_true")
    parser.add_argument("--startup-timeout", type=float, default=10.0)
    args = parser.parse_args()
    redis = DataDirRedis(args.directory, keep_running=args.keep_running, startup_timeout=args.startup_timeout)
    try:
        address = redis.attach()
    except AppError as exc:
        print(json.dumps({"error": exc.user_message(), "type": type(exc).__name__}), flush=True)
        sys.stdin.readline()
        return 0
    print(json.dumps({"pid": redis.pid, "port": address.port, "started_here": redis.started_here}), flush=True)
    sys.stdin.readline()
    redis.detach()
    print("left", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
