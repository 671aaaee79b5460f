"""Start, stop, kill and restart the demo LLM server as a child process.

Used when no LLM endpoint is configured (preset ``demo`` with an empty ``base_url``) and by
the end-to-end tests. Same lifecycle rules as the embedded Redis: loopback only, the child
dies with its parent (:class:`runtime.procs.ManagedProcess`), and a restart reuses the port
so clients and breakers see the same endpoint come back.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ServiceUnavailableError, ValidationError
from runtime.procs import ManagedProcess, free_port, wait_until

_FLAG_NAMES = {
    "latency": "--latency", "error_rate": "--error-rate", "error_status": "--error-status",
    "fail_next": "--fail-next", "rate_limit_rate": "--rate-limit-rate",
    "rate_limit_next": "--rate-limit-next", "retry_after": "--retry-after",
    "drop_after_tokens": "--drop-after-tokens", "hang": "--hang", "malformed": "--malformed",
    "malformed_tool_args": "--malformed-tool-args", "down": "--down",
}


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class DemoAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


class DemoLLMServer:
    """One demo LLM server child process on a fixed loopback port."""

    name = "demo-llm"

    def __init__(self, *, port: int = 0, tokens_per_second: float = 200.0, seed: int = 0,
                 log_path: Path | None = None, startup_timeout: float = 15.0,
                 python: str | None = None, **faults: float | int | bool) -> None:
        unknown = set(faults) - set(_FLAG_NAMES)
        if unknown:
            raise ValidationError(f"unknown demo fault(s): {', '.join(sorted(unknown))}")
        self.tokens_per_second = tokens_per_second
        self.seed = seed
        self.faults = faults
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self._requested_port = port
        self.address: DemoAddress | None = None
        self._proc: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.running() else None

    @property
    def url(self) -> str:
        """Base URL ending in ``/v1``, as an OpenAI client wants it."""
        if self.address is None:
            raise ServiceUnavailableError("the demo LLM server has not been started", service="llm")
        return self.address.url

    @property
    def root_url(self) -> str:
        return self.url.removesuffix("/v1")

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    def _argv(self, port: int) -> list[str]:
        argv = [self.python, "-m", "runtime.llm.demo_server", "--host", "127.0.0.1", "--port", str(port),
                "--tokens-per-second", str(self.tokens_per_second), "--seed", str(self.seed)]
        for key, value in self.faults.items():
            flag = _FLAG_NAMES[key]
            if isinstance(value, bool):
                if value:
                    argv.append(flag)
            else:
                argv += [flag, str(value)]
        return argv

    def start(self) -> DemoAddress:
        """Start (or restart on the same port) and wait until the port accepts connections."""
        if self.running():
            assert self.address is not None
            return self.address
        last_error = "did not open its port in time"
        for _ in range(3):  # a free port can be taken between probing and binding
            port = self.address.port if self.address else (self._requested_port or free_port())
            proc = ManagedProcess(self.name, self._argv(port), log_path=self.log_path)
            proc.spawn()
            ready = wait_until(lambda: port_open("127.0.0.1", port) or not proc.running(), self.startup_timeout)
            if ready and proc.running():
                self._proc = proc
                self.address = DemoAddress("127.0.0.1", port)
                return self.address
            proc.stop(timeout=1)
            last_error = self._tail_log() or last_error
            if self.address or self._requested_port:
                break
        raise ServiceUnavailableError(f"the demo LLM server could not start: {last_error}", service="llm")

    def _tail_log(self) -> str:
        if self.log_path is None:
            return ""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-200:] if lines else ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()

    def kill(self) -> None:
        """SIGKILL: the outage a person demos with ``/chaos llm kill``."""
        if self._proc is not None:
            self._proc.kill()
