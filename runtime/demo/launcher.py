"""Start, stop, kill and restart the demo LLM server as a child process.

Used when no LLM endpoint is configured (preset ``demo`` with an empty ``base_url``) and by
the end-to-end tests. Same lifecycle rules as the embedded Redis: loopback only, the child
dies with its parent (:class:`runtime.core.procs.ManagedProcess`), and a restart reuses the port
so clients and breakers see the same endpoint come back.
"""

from __future__ import annotations

import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from runtime.core.errors import ServiceUnavailableError, ValidationError
from runtime.core.procs import ManagedServer
from runtime.demo.profiles import DEFAULT_PROFILE, get_profile

_FLAG_NAMES = {
    "latency": "--latency",
    "error_rate": "--error-rate",
    "error_status": "--error-status",
    "fail_next": "--fail-next",
    "rate_limit_rate": "--rate-limit-rate",
    "rate_limit_next": "--rate-limit-next",
    "retry_after": "--retry-after",
    "drop_after_tokens": "--drop-after-tokens",
    "hang": "--hang",
    "malformed": "--malformed",
    "malformed_tool_args": "--malformed-tool-args",
    "down": "--down",
    "unknown_tool": "--unknown-tool",
}


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class DemoAddress:
    """Where a started demo server listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"


class DemoLLMServer(ManagedServer[DemoAddress]):
    """One demo LLM server child process on a fixed loopback port.

    ``tokens_per_second`` is the streaming speed (0: as fast as possible); ``seed`` makes random
    faults repeat; ``faults`` are :class:`runtime.demo.faults.Faults` fields passed as the
    server's command-line flags (``latency`` seconds, ``error_rate`` 0-1, ``down``...).

    Raises:
        ValidationError: an unknown fault name.
    """

    name = "demo-llm"
    service = "llm"
    # Stateless: when Holdfast dies, end at once rather than wait on in-flight streams.
    death_signal = signal.SIGKILL

    def __init__(
        self,
        *,
        port: int = 0,
        tokens_per_second: float = 200.0,
        seed: int = 0,
        log_path: Path | None = None,
        startup_timeout: float = 15.0,
        python: str | None = None,
        profile: str = DEFAULT_PROFILE,
        max_body_bytes: int | None = None,
        **faults: float | int | bool,
    ) -> None:
        unknown = set(faults) - set(_FLAG_NAMES)
        if unknown:
            raise ValidationError(f"unknown demo fault(s): {', '.join(sorted(unknown))}")
        get_profile(profile)  # an unknown profile fails here, not in the child
        super().__init__(port=port, log_path=log_path, startup_timeout=startup_timeout)
        self.tokens_per_second = tokens_per_second
        self.seed = seed
        #: The quirk profile the child starts with (``--profile``; see :mod:`runtime.demo.profiles`).
        self.profile = profile
        #: Largest request body the child accepts (``--max-body-bytes``); None: its 8 MiB default.
        self.max_body_bytes = max_body_bytes
        self.faults = faults
        self.python = python or sys.executable

    @property
    def address(self) -> DemoAddress | None:
        """Where it listens once started (kept across a kill, for the restart), else None."""
        return DemoAddress("127.0.0.1", self.port) if self.port else None

    @property
    def url(self) -> str:
        """Base URL ending in ``/v1``, as an OpenAI client wants it.

        Raises:
            ServiceUnavailableError: the server was never started.
        """
        if not self.port:
            raise ServiceUnavailableError("the demo LLM server has not been started", service="llm")
        return DemoAddress("127.0.0.1", self.port).url

    @property
    def root_url(self) -> str:
        """:attr:`url` without ``/v1`` (where ``/admin/faults`` lives); raises as :attr:`url`."""
        return self.url.removesuffix("/v1")

    def ready(self, port: int) -> bool:
        """True once the server accepts TCP connections on loopback ``port``."""
        return port_open("127.0.0.1", port)

    def argv(self, port: int) -> list[str]:
        """``python -m runtime.demo.server`` with the port, speed, seed and one flag per fault."""
        argv = [
            self.python,
            "-m",
            "runtime.demo.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tokens-per-second",
            str(self.tokens_per_second),
            "--seed",
            str(self.seed),
            "--profile",
            self.profile,
        ]
        if self.max_body_bytes is not None:
            argv += ["--max-body-bytes", str(self.max_body_bytes)]
        for key, value in self.faults.items():
            flag = _FLAG_NAMES[key]
            if isinstance(value, bool):
                if value:
                    argv.append(flag)
            else:
                argv += [flag, str(value)]
        return argv

    def address_for(self, port: int) -> DemoAddress:
        """``127.0.0.1:port``, what :meth:`start` and :meth:`astart` return."""
        return DemoAddress("127.0.0.1", port)
