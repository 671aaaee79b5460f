"""Chaos controls for demos and tests: kill and restart embedded backends, inject LLM faults,
take memory offline, make the demo LLM speak like a real server (``quirk``), kill a stdio MCP
server (``kill_mcp``: it is restarted with backoff). Used by the UI's
``/chaos`` command and the degradation tests.

Everything here acts on real parts: ``kill`` sends SIGKILL to the embedded process, ``faults``
goes through the demo server's admin endpoint, ``memory(False)`` forces the memory and
embeddings breakers open (the store then answers degraded, exactly as in an outage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from runtime.core.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from runtime.demo.launcher import DemoLLMServer
    from runtime.host.facade import FaultValue
    from runtime.resilience import BreakerRegistry

_MEMORY_BREAKERS = ("memory", "embeddings")


class BackendHandle(Protocol):
    """An embedded backend process a person may kill and restart (``/chaos``)."""

    @property
    def pid(self) -> int | None:
        """The process id while it runs, else None."""
        ...

    @property
    def url(self) -> str:
        """Where clients reach it (``redis://...`` or the OpenAI base URL ``http://.../v1``)."""
        ...

    def running(self) -> bool:
        """True while the process is alive."""
        ...

    def kill(self) -> None:
        """SIGKILL the process (the demo: no orderly shutdown)."""
        ...

    async def astart(self) -> object:
        """Start it again on its port; returns its address. Raises ServiceUnavailableError."""
        ...


class McpProcesses(Protocol):
    """The runtime's MCP servers, as far as chaos needs them (:class:`runtime.tools.mcp.McpManager`)."""

    def kill(self, name: str) -> int | None:
        """SIGKILL the stdio server ``name``; returns the pid killed, or None if it was not running."""
        ...


class Chaos:
    """Chaos actions on ``processes`` (the runtime's embedded backends by name, shared and filled
    as they start) and ``breakers`` (the runtime's breaker registry). Implements
    :class:`runtime.host.facade.ChaosActions`."""

    def __init__(self, processes: Mapping[str, BackendHandle], breakers: BreakerRegistry) -> None:
        self.processes = processes
        self.breakers = breakers
        #: The MCP servers, once the runtime started them (None: none configured).
        self.mcp: McpProcesses | None = None

    def _backend(self, name: str) -> BackendHandle:
        backend = self.processes.get(name)
        if backend is None:
            raise NotFoundError(f"no embedded backend {name!r} (embedded: {', '.join(self.processes) or 'none'})")
        return backend

    def _demo_server(self) -> DemoLLMServer:
        from runtime.demo.launcher import DemoLLMServer

        server = self.processes.get("llm")
        if not isinstance(server, DemoLLMServer):
            raise ValidationError("faults need the embedded demo LLM server")
        return server

    def kill(self, name: str) -> int | None:
        """SIGKILL the embedded ``redis`` or ``llm`` process; returns the pid it had (None if it
        was not running). NotFoundError for a backend this runtime did not start."""
        backend = self._backend(name)
        pid = backend.pid if backend.running() else None
        backend.kill()
        return pid

    def kill_mcp(self, name: str) -> int | None:
        """SIGKILL the stdio MCP server ``name`` (its whole process group); returns the pid it had,
        None if it was not running. It is restarted with backoff, as after any crash. NotFoundError
        for a server not configured; ServiceUnavailableError for an HTTP server (no process)."""
        if self.mcp is None:
            raise NotFoundError(f"no MCP server {name!r}: none is configured ([mcp.servers])")
        return self.mcp.kill(name)

    async def start(self, name: str) -> int | None:
        """Restart a killed backend on its old port; returns its new pid. NotFoundError as :meth:`kill`;
        ServiceUnavailableError if it cannot be started."""
        backend = self._backend(name)
        await backend.astart()
        return backend.pid

    async def faults(self, **faults: FaultValue) -> dict[str, FaultValue]:
        """Set demo LLM server faults (``latency`` seconds, ``error_rate`` 0..1, ``error_status``,
        ``fail_next``, ``down``...) and keep the others; returns every fault now set.
        ValidationError without the embedded demo server."""
        from runtime.demo.admin import DemoAdmin

        async with DemoAdmin(self._demo_server().root_url) as admin:
            return dict(await admin.set_faults(**faults))

    async def quirk(self, profile: str) -> str:
        """Switch the demo LLM server to the quirk ``profile`` (see :mod:`runtime.demo.profiles`);
        returns the profile now in force. ValidationError for an unknown profile (the message
        lists the known ones) or without the embedded demo server; :meth:`reset` returns to the
        server's start profile."""
        from runtime.demo.admin import DemoAdmin

        async with DemoAdmin(self._demo_server().root_url) as admin:
            return await admin.set_profile(profile)

    def memory(self, on: bool) -> None:
        """Take long-term memory offline (``False``) or bring it back (``True``)."""
        for name in _MEMORY_BREAKERS:
            breaker = self.breakers.get(name)
            if on:
                breaker.reset()
            else:
                breaker.force_open("memory taken offline by /chaos")

    async def reset(self) -> None:
        """Everything back to normal: backends running, no faults, breakers reset."""
        for name, backend in self.processes.items():
            if not backend.running():
                await self.start(name)
        if "llm" in self.processes:
            from runtime.demo.admin import DemoAdmin

            async with DemoAdmin(self._demo_server().root_url) as admin:
                await admin.reset()
        self.memory(True)
