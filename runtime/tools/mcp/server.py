"""One configured MCP server: its connection's life (start, restart with backoff, stop), its tools
in the registry, its guarded tool calls, its health check and its status.

The connection lives in one background task (the SDK's ``ClientSession`` must be entered and
left in the same task). Each round: open the transport (spawn the stdio child, or reach the
URL over streamable HTTP), ``initialize``, list the tools (all bounded by
``[mcp].start_timeout``), register them, then wait until the connection is lost (the child's
stdout ends, a call finds the connection closed) or the server is stopped. A lost or failed
connection is retried after ``[mcp].restart_delay`` seconds, doubling up to
``[mcp].restart_max_delay``; the delay starts again after a connection that stayed up that long.
The tools stay registered while the server is down: a call made then waits for it to come back
(within the call's timeout) or becomes an error the model reads.

Every call passes through ``Guard("mcp:<server>")`` (its own breaker and bulkhead; settings
``[resilience.mcp]``), inside the runner's ``Guard("tool:<name>")``. What each failure becomes::

    a hang past the timeout            OperationTimeoutError   counted   status "timeout"
    server down / died mid-call        ServiceUnavailableError counted   status "error"
    malformed reply, schema mismatch   McpProtocolError        counted   status "error"
    isError from the tool              McpToolError            ignored   status "error"
    breaker open                       CircuitOpenError        -         status "unavailable"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import httpx2
import mcp_types
from mcp import ClientSession, MCPError
from pydantic import ValidationError as PydanticValidationError

from runtime.config import McpConfig, McpServerConfig
from runtime.core.errors import (
    AppError,
    ExternalServiceError,
    OperationTimeoutError,
    ServiceUnavailableError,
    describe,
)
from runtime.core.events import BackendStatus, EventBus
from runtime.core.safe_text import clean, mask_url_credentials
from runtime.resilience.health import CheckResult, HealthStatus
from runtime.tools.api import ToolNameClash, ToolRegistry
from runtime.tools.mcp.content import McpProtocolError, McpToolError, result_text
from runtime.tools.mcp.listing import ListingFilter
from runtime.tools.mcp.stdio import StdioServerProcess, server_environment
from runtime.tools.mcp.tools import (
    InvalidToolSchema,
    McpTool,
    make_tool,
    qualified_name,
    registered_name,
    safe_name,
    tool_permission,
)

if TYPE_CHECKING:
    # The SDK's transport pair type (read, write) lives in a private module; annotations only.
    from mcp.client._transport import TransportStreams

    from runtime.resilience import Resilience

log = logging.getLogger(__name__)

ServerState = Literal["disabled", "starting", "running", "failed", "restarting", "stopped"]

#: How Holdfast introduces itself in ``initialize``.
CLIENT_INFO = mcp_types.Implementation(name="holdfast", version="0.1.0")
#: Seconds by which the runner's backstop timeout trails the server's own, so a hang is
#: reported (and counted) by ``Guard("mcp:<server>")`` first.
BACKSTOP_MARGIN = 0.25
#: Most tools/list pages read from one server (a server that pages forever is cut off).
MAX_LIST_PAGES = 50
#: The message of the SDK's own ``CONNECTION_CLOSED`` error (mcp.shared.jsonrpc_dispatcher).
SDK_CONNECTION_CLOSED = "Connection closed"
#: Most characters of a server's error message kept in an error (the rest is cut with "…").
MAX_SERVER_TEXT = 500


class McpServerUnavailable(ServiceUnavailableError):
    """The server is not connected (starting, restarting, stopped) or the connection died."""


@dataclass(frozen=True)
class McpServerStatus:
    """One MCP server as ``holdfast mcp list`` and the UI show it.

    ``state``: disabled, starting, running, failed (the last start failed; retried),
    restarting (it died; restarted with backoff) or stopped. ``tools`` maps the server's
    name for each tool to its registered name; ``skipped`` maps tools that were not
    registered (invalid schema) to why. ``restarts`` counts connections after the first.
    """

    name: str
    transport: Literal["stdio", "http"]
    target: str
    state: ServerState
    pid: int | None = None
    tools: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    last_error: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``holdfast mcp list --json``)."""
        return {
            "name": self.name,
            "transport": self.transport,
            "target": self.target,
            "state": self.state,
            "pid": self.pid,
            "tools": dict(self.tools),
            "skipped": dict(self.skipped),
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


class McpServer:
    """One ``[mcp.servers.NAME]``: see the module docstring.

    Args:
        name: the configured name (the guard is ``mcp:<name>``).
        config: its ``[mcp.servers.NAME]`` section.
        settings: the ``[mcp]`` section (start timeout, restart backoff, stop timeout).
        registry: where its tools are registered.
        resilience: gives the ``mcp:<name>`` guard; its ``[resilience.tools].timeout`` caps a call.
        bus: where :class:`BackendStatus` events (``mcp:<name>``) go.
        log_dir: a stdio server's stderr goes to ``<log_dir>/<name>.log``.
        clock: monotonic seconds (call deadlines, backoff resets).
    """

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        settings: McpConfig,
        registry: ToolRegistry,
        resilience: Resilience,
        *,
        bus: EventBus | None = None,
        log_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config
        self.settings = settings
        self.registry = registry
        self.resilience = resilience
        self.bus = bus
        self.log_dir = log_dir
        self._clock = clock
        self.service = f"mcp:{name}"
        self.guard = resilience.guard(self.service)
        tools_timeout = resilience.config.tools.timeout
        #: Seconds one call may take here (the configured timeout, within the runner's).
        self.call_timeout = min(config.timeout, max(tools_timeout - BACKSTOP_MARGIN, tools_timeout / 2))
        self.state: ServerState = "starting" if config.enabled else "disabled"
        self.last_error = ""
        self.restarts = 0
        #: Connection attempts that failed in a row (0 once one succeeds).
        self.failed_attempts = 0
        #: The server's name for each registered tool -> its name in the registry.
        self.tools: dict[str, str] = {}
        #: Tools not registered -> why (an invalid schema, a name nobody can take, listed twice).
        self.skipped: dict[str, str] = {}
        #: Every server of the runtime by name, this one included (set by the manager): a tool name
        #: two of them offer is qualified on both (:meth:`_name_for`).
        self.peers: Mapping[str, McpServer] = {}
        self._process: StdioServerProcess | None = None
        self._session: ClientSession | None = None
        self._up = asyncio.Event()
        self._settled = asyncio.Event()
        self._lost = asyncio.Event()
        #: Set when a connection attempt fails (then replaced): wakes the calls waiting for it.
        self._attempt_failed = asyncio.Event()
        #: Set by a call while the server is down: the next connection attempt starts at once.
        self._wake = asyncio.Event()
        self._connected = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def target(self) -> str:
        """The command line (stdio) or URL (HTTP, any password in it masked) of the server."""
        if self.config.command:
            return " ".join([self.config.command, *self.config.args])
        return mask_url_credentials(self.config.url)

    @property
    def pid(self) -> int | None:
        """The stdio child's pid while it runs, else None."""
        process = self._process
        return process.pid if process is not None and process.running() else None

    def start(self) -> None:
        """Start connecting in the background (returns at once; needs a running event loop)."""
        if not self.config.enabled or self._task is not None:
            if not self.config.enabled:
                self._settled.set()
            return
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mcp:{self.name}")

    async def wait_settled(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait, not a call
        """Wait up to ``timeout`` seconds for the first start attempt to end (running or failed);
        True if it did."""
        try:
            async with asyncio.timeout(timeout):
                await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Close the connection and stop a stdio child (bounded; idempotent). Its tools are
        unregistered."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            # The child gets stop_timeout to exit, then as long for SIGTERM and for SIGKILL.
            bound = self.settings.stop_timeout * 3 + self.settings.start_timeout / 10 + 1.0
            done, _ = await asyncio.wait({task}, timeout=bound)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for name in self.tools.values():
            self.registry.unregister(name)
        self.tools.clear()
        if self.state != "disabled":
            self._set_state("stopped")

    def kill(self) -> int | None:
        """SIGKILL a stdio server's process (``/chaos kill mcp NAME``); returns the pid it had, None
        if it was not running. It is restarted like any server that died.

        Raises:
            McpServerUnavailable: an HTTP server, which has no process here.
        """
        if self.config.transport != "stdio":
            raise McpServerUnavailable(f"MCP server {self.name} is reached over HTTP: there is no process to kill")
        return self._process.kill() if self._process is not None else None

    def status(self) -> McpServerStatus:
        """The server as it is now (no I/O)."""
        return McpServerStatus(
            name=self.name,
            transport=self.config.transport,
            target=self.target,
            state=self.state,
            pid=self.pid,
            tools=dict(self.tools),
            skipped=dict(self.skipped),
            restarts=self.restarts,
            last_error=self.last_error,
        )

    async def _run(self) -> None:
        delay = self.settings.restart_delay
        while not self._stopping.is_set():
            began = self._clock()
            self._wake.clear()  # this attempt answers the calls that asked for one so far
            try:
                await self._connection()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of an outside server is reported, then retried
                self._failed(exc)
            if self._stopping.is_set():
                break
            if self._clock() - began >= self.settings.restart_max_delay:
                delay = self.settings.restart_delay  # it was up a good while: this is a fresh failure
            self.restarts += 1
            log.warning("MCP server %s: restarting in %.1fs (%s)", self.name, delay, self.last_error or "it stopped")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await _first_of(self._stopping, self._wake)  # a call wants the server: try now
            delay = min(delay * 2, self.settings.restart_max_delay)
        self._settled.set()

    async def _connection(self) -> None:
        """One connection, from opening the transport to losing it (or the stop)."""
        self._lost.clear()
        self._connected = False
        if self.state != "starting":
            self._set_state("restarting" if self.state in ("running", "restarting") else "failed")
        async with contextlib.AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport())
            # Tools with an invalid schema are taken out of the listing here, one by one.
            listing = ListingFilter(read, write)
            session = await stack.enter_async_context(
                ClientSession(listing.reader, listing.writer, client_info=CLIENT_INFO)
            )
            try:
                async with asyncio.timeout(self.settings.start_timeout):
                    await session.initialize()
                    listed = await _list_tools(session)
            except TimeoutError as exc:
                raise OperationTimeoutError(
                    f"MCP server {self.name} did not start within {self.settings.start_timeout:g}s",
                    service=self.service,
                ) from exc
            self._register(listed, listing.skipped)
            self._session = session
            self.last_error = ""
            self._connected = True
            self.failed_attempts = 0
            self._set_state("running")
            self._up.set()
            self._settled.set()
            try:
                await self._until_lost()
            finally:
                self._session = None
                self._up.clear()

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[TransportStreams]:
        if self.config.transport == "stdio":
            process = self._process = StdioServerProcess(
                self.name,
                self.config.command,
                self.config.args,
                env=server_environment(self.config.env),
                cwd=self.config.cwd or None,
                log_path=self.log_dir / f"{self.name}.log" if self.log_dir is not None else None,
                stop_timeout=self.settings.stop_timeout,
            )
            async with process.connect() as streams:
                yield streams
            return
        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(
            headers=dict(self.config.headers), timeout=httpx2.Timeout(self.settings.start_timeout, read=300.0)
        )
        async with client, streamable_http_client(self.config.url, http_client=client) as (read, write):
            yield read, write

    async def _until_lost(self) -> None:
        """Return when the stop was asked; raise when the connection was lost."""
        waits = [self._stopping.wait(), self._lost.wait()]
        if self._process is not None:
            waits.append(self._process.exited.wait())
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        if self._stopping.is_set():
            return
        if self._process is not None and self._process.exited.is_set():
            raise McpServerUnavailable(f"MCP server {self.name} exited", service=self.service)
        raise McpServerUnavailable(f"MCP server {self.name} lost its connection", service=self.service)

    def _failed(self, exc: BaseException) -> None:
        inner = _innermost(exc)
        self.last_error = self._reason(inner)
        log.error("MCP server %s: %s", self.name, self.last_error)
        if not self._connected:
            self.failed_attempts += 1
            failed, self._attempt_failed = self._attempt_failed, asyncio.Event()
            failed.set()
        if self.state in ("starting", "failed"):
            self._set_state("failed")
        elif self.state in ("running", "restarting"):
            self._set_state("restarting")
        self._settled.set()

    def _set_state(self, state: ServerState) -> None:
        self.state = state
        if self.bus is None:
            return
        # Down is down for the Health panel: restarting and failed are both "failed", with why.
        wire = {"running": "running", "stopped": "stopped", "starting": "starting"}
        reason = f"{state}: {self.last_error}" if self.last_error and state in ("failed", "restarting") else state
        self.bus.publish(
            BackendStatus(
                name=self.service,
                status=wire.get(state, "failed"),
                pid=self.pid if state == "running" else None,
                address=self.target,
                detail=reason,
            )
        )

    # ------------------------------------------------------------ tools

    def _register(self, listed: list[mcp_types.Tool], skipped: dict[str, str]) -> None:
        """Bring the registry in line with the server's listing (first start or a restart);
        ``skipped``: the tools the listing filter took out (invalid schemas), with why."""
        wanted: dict[str, mcp_types.Tool] = {}
        self.skipped = dict(skipped)
        for item in listed:
            if item.name in wanted:
                self.skipped[item.name] = "listed twice by the server; the first definition is used"
            else:
                wanted.setdefault(item.name, item)
        for remote in [r for r in self.tools if r not in wanted]:
            self.registry.unregister(self.tools.pop(remote))
        for remote, why in self.skipped.items():
            log.error("MCP server %s: tool %r skipped: %s", self.name, remote, why)
        for remote, item in wanted.items():
            old = self.tools.pop(remote, None)
            if old is not None:
                self.registry.unregister(old)
            name = old or self._name_for(remote)
            try:
                tool = make_tool(
                    self.name, self.config, item, name, self.call_tool, self.call_timeout + BACKSTOP_MARGIN
                )
                self.registry.register(tool)
            except (InvalidToolSchema, ToolNameClash) as exc:
                self.skipped[remote] = exc.message
                log.error("MCP server %s: tool %r skipped: %s", self.name, remote, exc.message)
                continue
            self.tools[remote] = name
        log.info("MCP server %s: tools %s", self.name, ", ".join(self.tools.values()) or "none")

    def _name_for(self, remote: str) -> str:
        """The registry name for this server's tool ``remote`` on its first registration.

        The server's own name for it (made safe, :func:`safe_name`) unless a plugin already has
        that name or another connected MCP server offers a tool of the same name: then it is
        ``<server>__<tool>``, and the other server's tool, if it had the plain name, is renamed
        the same way. So which names the model sees depends on which servers are up, never on
        which of them answered first.
        """
        plain = safe_name(remote)
        contested = False
        for peer in self.peers.values():
            if peer is self:
                continue
            for peer_remote, peer_name in list(peer.tools.items()):
                if safe_name(peer_remote) != plain:
                    continue
                contested = True
                if peer_name == plain:
                    peer.rename(peer_remote, qualified_name(peer.name, peer_remote))
        return registered_name(self.name, remote, lambda n: contested or n in self.registry)

    def rename(self, remote: str, name: str) -> None:
        """Register this server's tool ``remote`` as ``name`` instead (another server offers a tool
        of the same name); kept as it is when ``name`` is taken."""
        old = self.tools.get(remote)
        found = self.registry.get(old) if old is not None else None
        if old is None or not isinstance(found, McpTool) or name in self.registry:
            return
        self.registry.unregister(old)
        self.registry.register(replace(found, name=name, permission=tool_permission(self.config, remote, name)))
        self.tools[remote] = name
        log.info("MCP server %s: tool %s renamed %s (another MCP server offers %s)", self.name, old, name, old)

    def registered(self) -> list[McpTool]:
        """This server's tools as registered."""
        found = (self.registry.get(name) for name in self.tools.values())
        return [t for t in found if isinstance(t, McpTool)]

    async def call_tool(self, remote: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool ``remote`` through ``Guard("mcp:<server>")``; returns its text.

        Raises:
            McpToolError: the tool answered ``isError`` (its text is the message).
            OperationTimeoutError: no answer within :attr:`call_timeout` seconds.
            McpServerUnavailable: the server did not come up in time, or died during the call.
            McpProtocolError: a malformed reply.
            CircuitOpenError: the server's breaker is open.
        """
        return await self.guard.call(lambda: self._call_once(remote, arguments))

    async def _call_once(self, remote: str, arguments: dict[str, Any]) -> str:
        deadline = self._clock() + self.call_timeout
        session = self._session or await self._wait_up(remote)
        try:
            async with asyncio.timeout(max(deadline - self._clock(), 0.001)):
                result = await session.call_tool(remote, arguments)
        except TimeoutError as exc:
            raise OperationTimeoutError(
                f"{remote} on MCP server {self.name} did not answer within {self.call_timeout:g}s",
                retryable=False,
                service=self.service,
            ) from exc
        except MCPError as exc:
            raise self._mcp_error(remote, exc) from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            self._lost.set()
            raise McpServerUnavailable(
                f"MCP server {self.name} closed the connection during {remote}", service=self.service
            ) from exc
        except (ValueError, RuntimeError) as exc:
            # pydantic's ValidationError (a result that is not a CallToolResult) is a ValueError;
            # the SDK raises RuntimeError for structured content that breaks the output schema.
            raise McpProtocolError(
                f"MCP server {self.name} answered {remote} with a malformed result: {_first_line(exc)}",
                service=self.service,
            ) from exc
        if not isinstance(result, mcp_types.CallToolResult):
            raise McpProtocolError(
                f"MCP server {self.name} answered {remote} with a {type(result).__name__}, not a tool result",
                service=self.service,
            )
        text = result_text(result)
        if result.is_error:
            raise McpToolError(f"{remote} failed: {text or 'no details'}", service=self.service)
        return text

    async def _wait_up(self, remote: str) -> ClientSession:
        """The session once the server is up. While it is down, the call starts the next
        connection attempt at once (the restart backoff is for the server's sake when nobody
        needs it; a user's call should not wait it out, nor find a server that came back still
        unused) and waits for that attempt, at most the call's timeout: a crashed stdio server
        is respawned and the call runs; an attempt that fails (an HTTP server that is down, a
        command that cannot start) is :class:`McpServerUnavailable` at once. The server's breaker
        (``Guard("mcp:<server>")``) counts those failures and, once open, keeps calls from
        reaching here until its half-open probe."""
        if self.state in ("stopped", "disabled"):
            raise McpServerUnavailable(f"MCP server {self.name} is {self.state}", retryable=False, service=self.service)
        failed = self._attempt_failed
        self._wake.set()
        try:
            async with asyncio.timeout(self.call_timeout):
                while self._session is None:
                    if failed.is_set():
                        raise self._down(remote)
                    await _first_of(self._up, failed)
        except TimeoutError as exc:
            raise self._down(remote) from exc
        assert self._session is not None
        return self._session

    def _down(self, remote: str) -> McpServerUnavailable:
        why = f" ({self.last_error})" if self.last_error else ""
        return McpServerUnavailable(
            f"MCP server {self.name} is {self.state}{why}; {remote} was not run", retryable=False, service=self.service
        )

    def _reason(self, exc: BaseException) -> str:
        """Why a connection failed or ended, in one line that names the server's command or URL
        where the error alone would not (an HTTP client's "All connection attempts failed")."""
        if isinstance(exc, AppError):
            return _server_text(exc.message)
        if self.config.transport == "http" and isinstance(exc, httpx2.HTTPError):
            return _server_text(f"cannot reach {mask_url_credentials(self.config.url)}: {describe(exc)}")
        return _server_text(describe(exc))

    def _mcp_error(self, remote: str, exc: MCPError) -> AppError:
        code, message = exc.code, _server_text(exc.message)
        if code == mcp_types.CONNECTION_CLOSED and exc.message == SDK_CONNECTION_CLOSED and exc.data is None:
            # The SDK's own outcome for a transport that ended. A server may send -32000 too: it is
            # the first code of JSON-RPC's "server error" range, an application error, not a hang-up.
            self._lost.set()
            return McpServerUnavailable(
                f"MCP server {self.name} closed the connection during {remote}", retryable=False, service=self.service
            )
        if code == mcp_types.REQUEST_TIMEOUT:
            return OperationTimeoutError(
                f"{remote} on MCP server {self.name}: {message}", retryable=False, service=self.service
            )
        if code in (mcp_types.INVALID_PARAMS, mcp_types.METHOD_NOT_FOUND):
            return McpToolError(f"{remote} refused the call: {message}", service=self.service)
        if code == mcp_types.INTERNAL_ERROR:
            return McpProtocolError(f"MCP server {self.name} failed {remote}: {message}", service=self.service)
        return ExternalServiceError(
            f"MCP server {self.name} answered {remote} with error {code}: {message}",
            retryable=False,
            service=self.service,
        )

    # ------------------------------------------------------------ health

    async def check(self) -> CheckResult:
        """The Health row ``mcp:<name>``: a ping while running (HEALTHY with its latency in
        milliseconds), DEGRADED while starting, UNHEALTHY when failed, restarting or stopped."""
        details: dict[str, Any] = {"state": self.state, "tools": len(self.tools), "restarts": self.restarts}
        if self.pid is not None:
            details["pid"] = self.pid
        session = self._session
        if session is None:
            status = HealthStatus.DEGRADED if self.state == "starting" else HealthStatus.UNHEALTHY
            return CheckResult(status=status, details=details, error=self.last_error or self.state)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(min(self.call_timeout, 5.0)):
                await session.send_ping()
        except (TimeoutError, MCPError, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            return CheckResult(status=HealthStatus.UNHEALTHY, details=details, error=f"ping failed: {describe(exc)}")
        return CheckResult(
            status=HealthStatus.HEALTHY, latency_ms=(time.perf_counter() - started) * 1000, details=details
        )


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    """Every tool the server lists, following pagination (at most :data:`MAX_LIST_PAGES` pages)."""
    found: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        found.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return found


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _innermost(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps a task's failure in one)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _server_text(text: str) -> str:
    """A message a server wrote, made safe to show and store: no terminal control or invisible
    characters (:func:`~runtime.core.safe_text.clean`), one line, at most :data:`MAX_SERVER_TEXT` characters."""
    flat = " ".join(clean(text).split())
    return flat if len(flat) <= MAX_SERVER_TEXT else flat[: MAX_SERVER_TEXT - 1] + "…"


def _first_line(exc: BaseException) -> str:
    """What is wrong with a malformed result, in one line: for pydantic's error, where the first
    problem is and what it is (a union's alternatives are not listed one by one)."""
    if isinstance(exc, PydanticValidationError) and exc.error_count():
        first = exc.errors()[0]
        path: list[str] = []
        for part in first["loc"]:
            if isinstance(part, str) and part[:1].isupper():  # a union member's name: stop at the union
                return f"{'.'.join(path) or 'the result'} matches none of the shapes MCP allows there"
            path.append(str(part))
        return _server_text(f"{'.'.join(path) or 'the result'}: {first['msg']}")
    text = str(exc).strip().splitlines()
    return _server_text(text[0][:200]) if text else type(exc).__name__
