"""One stdio MCP server as a child process, and the transport the SDK's ``ClientSession`` talks over.

The ``mcp`` SDK's own ``stdio_client`` hides the process; Holdfast needs it: its pid goes to the
Health row and to ``/chaos kill mcp NAME``, and it must never outlive Holdfast. So the child is
spawned here, with the same lifecycle rules as the embedded redis-server
(:mod:`runtime.core.procs`):

* the kernel sends it SIGTERM when the thread that spawned it dies (``PR_SET_PDEATHSIG``);
* it runs in its own session (Ctrl+C in the TUI does not reach it, and its whole process group
  can be signalled);
* an orderly stop closes its stdin (the MCP spec's shutdown), waits ``stop_timeout`` seconds,
  then SIGTERMs and finally SIGKILLs the group; an ``atexit`` hook kills any group still alive;
* a :mod:`watchdog <runtime.tools.mcp.watchdog>` process per spawn stops the group (SIGTERM,
  ``stop_timeout`` seconds, SIGKILL) once Holdfast is gone in any way, SIGKILL included, which
  neither the death signal (a server may ignore SIGTERM; a launcher's children never get it)
  nor ``atexit`` covers.

The wire is newline-delimited JSON-RPC (MCP spec, transports/stdio). A line that is not a valid
JSON-RPC message is "malformed": if it still carries the id of a request, that request is
answered here with an ``INTERNAL_ERROR`` so the caller gets an error at once instead of
waiting for its timeout; otherwise the line is logged and dropped. The server's stderr goes to
``log_path``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO

import anyio
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError as PydanticValidationError

from runtime.core.errors import ServiceUnavailableError
from runtime.core.procs import death_signal_preexec, pid_alive

log = logging.getLogger(__name__)

#: The script that stops a server's process group once Holdfast is gone (run by path: stdlib only).
WATCHDOG = Path(__file__).with_name("watchdog.py")
#: Longest line (bytes) accepted from a server: one JSON-RPC message, a large tool output included.
MAX_LINE_BYTES = 32 * 1024 * 1024

#: What a stdio server inherits from Holdfast's environment (the SDK's choice on POSIX); the
#: configured ``env`` is added on top, so secrets in Holdfast's environment do not leak.
INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR")

ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]

_live: set[int] = set()
_live_lock = threading.Lock()


def _kill_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (the server and anything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@atexit.register
def _kill_leftovers() -> None:
    """Last resort at interpreter exit: no stdio server outlives a Holdfast that forgot to stop it."""
    with _live_lock:
        pids = list(_live)
        _live.clear()
    for pid in pids:
        _kill_group(pid, signal.SIGKILL)


def find_command(command: str, path: str | None) -> str | None:
    """The executable to run for ``command``: a path (it has a ``/``) as given; a bare name looked up on ``path`` (the server's ``PATH``), then in the directory of
    Holdfast's own interpreter, where ``pip install mcp-server-time`` put it when Holdfast's
    virtualenv is not activated (``make run``). None when it is found nowhere."""
    if os.sep in command:
        return command  # the spawn resolves a relative path against the server's cwd
    found = shutil.which(command, path=path if path is not None else os.defpath)
    if found is not None:
        return found
    return shutil.which(command, path=str(Path(sys.executable).parent))


def server_environment(extra: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: :data:`INHERITED_ENV` from ``environ`` (default ``os.environ``)
    plus ``extra`` (the server's configured ``env``), which wins."""
    source = os.environ if environ is None else environ
    base = {k: source[k] for k in INHERITED_ENV if k in source and not source[k].startswith("()")}
    return base | dict(extra)


class StdioServerProcess:
    """A stdio MCP server child process, spawned by :meth:`connect` and stopped when it exits.

    Args:
        name: the server's configured name (messages, logs).
        command, args: what to run.
        env: the child's whole environment (see :func:`server_environment`).
        cwd: its working directory; None: Holdfast's.
        log_path: where its stderr is appended (None: discarded).
        stop_timeout: seconds it gets to exit once its stdin is closed, before SIGTERM, and again
            before SIGKILL.
    """

    def __init__(
        self,
        name: str,
        command: str,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: str | None = None,
        log_path: Path | None = None,
        stop_timeout: float = 2.0,
    ) -> None:
        self.name = name
        self.command = command
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._watchdog: asyncio.subprocess.Process | None = None
        #: Set when the server's stdout ended (it exited, or closed it): the connection is over.
        self.exited = asyncio.Event()
        #: Lines that were not JSON-RPC messages, since the process started.
        self.malformed_lines = 0

    @property
    def pid(self) -> int | None:
        """The child's pid once spawned (kept after it exits), else None."""
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        """True while the spawned child has not exited."""
        return self._proc is not None and self._proc.returncode is None and pid_alive(self._proc.pid)

    def kill(self) -> int | None:
        """SIGKILL the server's process group now (``/chaos kill mcp NAME``); returns the pid it had,
        None when it was not running. The connection notices and the server is restarted."""
        if not self.running():
            return None
        assert self._proc is not None
        _kill_group(self._proc.pid, signal.SIGKILL)
        return self._proc.pid

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
        """Spawn the server and bridge its stdin/stdout to the memory streams a ``ClientSession``
        reads and writes; on exit, stop it (bounded, also when cancelled).

        Raises:
            ServiceUnavailableError: the command cannot be run (missing, not executable) or its
                log cannot be opened; not retryable.
        """
        proc = await self._spawn()
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_stdout, proc, read_writer)
                tg.start_soon(self._write_stdin, proc, write_reader, read_writer)
                try:
                    yield read_stream, write_stream
                finally:
                    write_stream.close()
                    read_stream.close()
                    with anyio.CancelScope(shield=True):
                        await self._stop(proc)
                    tg.cancel_scope.cancel()
        finally:
            # Whatever happened above (a cancellation mid-stop included), the group is gone now.
            if proc.returncode is None:
                _kill_group(proc.pid, signal.SIGKILL)
            with _live_lock:
                _live.discard(proc.pid)
            await self._end_watchdog()

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            log_file = await asyncio.to_thread(self._open_log)
        except OSError as exc:
            raise ServiceUnavailableError(
                f"MCP server {self.name}: cannot open its log {self.log_path}: {exc.strerror}",
                retryable=False,
                service=f"mcp:{self.name}",
            ) from exc
        self.exited = asyncio.Event()
        self.malformed_lines = 0
        executable = find_command(self.command, self.env.get("PATH"))
        if executable is None:
            if log_file is not None:
                log_file.close()
            raise ServiceUnavailableError(
                f"MCP server {self.name}: command {self.command!r} not found on PATH nor beside Holdfast's Python "
                f"({Path(sys.executable).parent}); install it there or give its full path as "
                f"[mcp.servers.{self.name}].command",
                retryable=False,
                service=f"mcp:{self.name}",
            )
        try:
            proc = await asyncio.create_subprocess_exec(
                executable,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file if log_file is not None else asyncio.subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd or None,
                start_new_session=True,
                preexec_fn=death_signal_preexec(signal.SIGTERM),
                limit=MAX_LINE_BYTES,
            )
        except OSError as exc:
            raise ServiceUnavailableError(
                f"MCP server {self.name} could not be started ({self.command}): {exc.strerror or exc}; "
                f"check [mcp.servers.{self.name}].command and cwd",
                retryable=False,
                service=f"mcp:{self.name}",
            ) from exc
        finally:
            if log_file is not None:
                log_file.close()
        with _live_lock:
            _live.add(proc.pid)
        self._proc = proc
        self._watchdog = await self._start_watchdog(proc.pid)
        log.info("MCP server %s started: pid %d (%s)", self.name, proc.pid, self.command)
        return proc

    async def _start_watchdog(self, pgid: int) -> asyncio.subprocess.Process | None:
        """Start the server's :mod:`watchdog <runtime.tools.mcp.watchdog>` (its stdin a pipe only
        we write to); None, with a warning, if it cannot start: the server still runs, with the
        death signal and the orderly stop as its only guards."""
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                str(WATCHDOG),
                str(pgid),
                f"{self.stop_timeout:g}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("MCP server %s: no watchdog (%s); it may outlive a Holdfast that is killed", self.name, exc)
            return None

    async def _end_watchdog(self) -> None:
        """Close the watchdog's stdin (the server is stopped: it finds the group gone and exits)
        and reap it, waiting at most ``stop_timeout`` seconds plus one."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stop_timeout + 1.0):
                await watchdog.wait()

    def _open_log(self) -> IO[bytes] | None:
        if self.log_path is None:
            return None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.log_path, "ab")  # handed to the child, closed by _spawn once it is spawned

    async def _read_stdout(
        self, proc: asyncio.subprocess.Process, sink: MemoryObjectSendStream[SessionMessage | Exception]
    ) -> None:
        assert proc.stdout is not None
        try:
            async with sink:
                while True:
                    try:
                        raw = await proc.stdout.readline()
                    except (ValueError, asyncio.LimitOverrunError):
                        # A line past MAX_LINE_BYTES: the stream cannot be resynchronised.
                        log.error(
                            "MCP server %s wrote a line over %d bytes; dropping the connection",
                            self.name,
                            MAX_LINE_BYTES,
                        )
                        _kill_group(proc.pid, signal.SIGKILL)
                        return
                    if not raw:
                        return
                    message = self._parse(raw)
                    if message is not None:
                        await sink.send(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        finally:
            self.exited.set()

    def _parse(self, raw: bytes) -> SessionMessage | None:
        """One stdout line as a message; a malformed line answering a request becomes its error."""
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(text, by_name=False))
        except ValueError as exc:
            self.malformed_lines += 1
            reason = _envelope_problem(exc, text)
            request_id = _request_id(text)
            log.warning("MCP server %s wrote a malformed message (%s): %.200s", self.name, reason, text)
            if request_id is None:
                return None
            error = mcp_types.ErrorData(
                code=mcp_types.INTERNAL_ERROR, message=f"malformed reply from MCP server {self.name}: {reason}"
            )
            return SessionMessage(mcp_types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error))

    async def _write_stdin(
        self,
        proc: asyncio.subprocess.Process,
        source: MemoryObjectReceiveStream[SessionMessage],
        sink: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        assert proc.stdin is not None
        try:
            async with source:
                async for message in source:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    proc.stdin.write(data.encode())
                    await proc.stdin.drain()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError, OSError):
            # The server is gone: end the session's reads too, so no request waits for its timeout.
            await sink.aclose()

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        """Close stdin, wait ``stop_timeout``; SIGTERM the group, wait; SIGKILL the group."""
        if proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                _kill_group(proc.pid, sig)
            if await _exited(proc, self.stop_timeout):
                break
        else:
            log.warning("MCP server %s (pid %d) is still alive after SIGKILL", self.name, proc.pid)
        log.info("MCP server %s stopped (pid %d, exit status %s)", self.name, proc.pid, proc.returncode)


async def _exited(proc: asyncio.subprocess.Process, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded poll
    """Whether ``proc`` exited within ``timeout`` seconds. Polls the return code rather than
    ``proc.wait()``, which also waits for the pipes to close (a grandchild may hold them)."""
    deadline = time.monotonic() + timeout
    while proc.returncode is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


#: The JSON-RPC message kinds, by the member a message of that kind has (the union's names).
_KINDS = (("error", "JSONRPCError", "error"), ("result", "JSONRPCResponse", "response"), ("method", "", ""))


def _envelope_problem(exc: ValueError, text: str) -> str:
    """Why ``text`` is not a JSON-RPC message, in one line: for a line that is JSON and looks like
    a response or an error (it has ``result`` or ``error``), the first problem of that kind, not
    pydantic's list for every kind of the union."""
    try:
        value = json.loads(text)
    except ValueError:
        return "not JSON"
    if isinstance(exc, PydanticValidationError) and isinstance(value, dict):
        for member, model, label in _KINDS:
            if member not in value or not model:
                continue
            for error in exc.errors():
                if error["loc"] and error["loc"][0] == model:
                    where = ".".join(str(p) for p in error["loc"][1:]) or "message"
                    return f"not a valid JSON-RPC {label}: {where}: {error['msg']}"
    return "not a JSON-RPC 2.0 message"


def _request_id(text: str) -> str | int | None:
    """The JSON-RPC id in a malformed line, when it is a JSON object that still has one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("id"), (str, int)) and not isinstance(value.get("id"), bool):
        found: str | int = value["id"]
        return found
    return None
