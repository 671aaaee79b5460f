"""Helpers for the MCP tests: the test servers (``tests/mcp/servers``), their config entries, a
Config for a Runtime with MCP servers on the test Redis and demo LLM, and the streamable HTTP
notes server as a child process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.config import Config
from runtime.core.procs import free_port, pid_alive
from runtime.host.runtime import Runtime
from tests.support.polling import wait_until

SERVERS = Path(__file__).resolve().parents[1] / "mcp" / "servers"
#: The SDK-written test server (echo, add, slow, whoami, fail).
NOTES = SERVERS / "notes.py"
#: The hand-written server that breaks the protocol (invalid schemas, malformed replies).
LIAR = SERVERS / "liar.py"
#: ``mcp_runtime(servers, user=..., **sections)``: the fixture making Runtimes with MCP servers.
MakeRuntime = Callable[..., Runtime]
#: The third-party server from PyPI (``mcp-server-time``), installed beside this interpreter.
TIME_SERVER = Path(sysconfig.get_path("scripts")) / "mcp-server-time"


def notes(**extra: Any) -> dict[str, Any]:
    """A ``[mcp.servers.NAME]`` entry running the notes server over stdio (tools allowed)."""
    return {"command": sys.executable, "args": [str(NOTES)], "permission": "allow", **extra}


def liar(**extra: Any) -> dict[str, Any]:
    """A ``[mcp.servers.NAME]`` entry running the lying server over stdio (tools allowed)."""
    return {"command": sys.executable, "args": [str(LIAR)], "permission": "allow", **extra}


def time_server(**extra: Any) -> dict[str, Any]:
    """A ``[mcp.servers.NAME]`` entry running ``mcp-server-time`` in UTC (tools allowed)."""
    return {"command": str(TIME_SERVER), "args": ["--local-timezone", "UTC"], "permission": "allow", **extra}


def mcp_config(data_dir: Path, redis_url: str, llm_url: str, servers: dict[str, Any], **sections: Any) -> Config:
    """A Config on the test Redis and demo LLM with ``servers`` as ``[mcp.servers]``: one attempt
    per call everywhere, fast restarts (0.1 s, at most 1 s), lexical embeddings."""
    fast = {"max_attempts": 1, "initial_delay": 0.0, "recovery_timeout": 60.0}
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "llm": {"preset": "openai", "base_url": llm_url, "model": "holdfast-demo"},
        "redis": {"url": redis_url},
        "memory": {"embedding_provider": "lexical"},
        "resilience": {"llm": dict(fast), "redis": {**fast, "timeout": 1.0}, "tools": dict(fast)},
        "mcp": {"servers": servers, "restart_delay": 0.1, "restart_max_delay": 1.0, "start_timeout": 20.0},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return Config(**raw)


def start_http_notes(port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The notes server over streamable HTTP on ``port`` (None: a free loopback port; a given one
    restarts a server where clients already point), once it accepts connections: (the process,
    its MCP URL). Stop it with :func:`stop`."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, str(NOTES), "--http", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return proc.poll() is not None  # it died: stop waiting, the caller's assert says so
        return True

    wait_until(accepts, what=f"the HTTP notes server on port {port}")
    assert proc.poll() is None, "the HTTP notes server exited at start"
    return proc, f"http://127.0.0.1:{port}/mcp"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``proc`` and wait until it is gone (SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert not pid_alive(proc.pid)
