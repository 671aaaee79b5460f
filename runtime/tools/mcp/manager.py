"""Every configured MCP server of one runtime: start them in the background, wait for them
(bounded), stop them all, and answer for them (statuses, errors, chaos kills).

The Runtime builds one :class:`McpManager` from ``[mcp]`` and calls :meth:`start` from its own
start, which returns at once: servers connect in background tasks, so neither the Runtime nor
the TUI's first frame waits for them. A turn waits for the servers still starting (at most
``[mcp].start_timeout`` seconds, :meth:`wait_ready`) so its tool list includes theirs.
:meth:`stop` stops every stdio server this runtime started (no orphans).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.config import McpConfig
from runtime.core.errors import NotFoundError, describe
from runtime.core.events import EventBus
from runtime.tools.api import ToolRegistry
from runtime.tools.mcp.server import McpServer, McpServerStatus

if TYPE_CHECKING:
    from runtime.resilience import HealthMonitor, Resilience

log = logging.getLogger(__name__)


class McpManager:
    """The MCP servers of ``config`` (``[mcp]``), their tools joining ``registry``.

    Args:
        config: the ``[mcp]`` section.
        registry: where every server's tools are registered.
        resilience: gives each server its ``Guard("mcp:<name>")``.
        monitor: gets a health check ``mcp:<name>`` per enabled server (None: no checks).
        bus: where each server's :class:`~runtime.core.events.BackendStatus` events go.
        log_dir: stdio servers' stderr goes to ``<log_dir>/<name>.log`` (None: discarded).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        config: McpConfig,
        registry: ToolRegistry,
        resilience: Resilience,
        *,
        monitor: HealthMonitor | None = None,
        bus: EventBus | None = None,
        log_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.servers: dict[str, McpServer] = {
            name: McpServer(name, server, config, registry, resilience, bus=bus, log_dir=log_dir, clock=clock)
            for name, server in config.servers.items()
        }
        for server in self.servers.values():
            server.peers = self.servers
        self.started = False

    def start(self) -> None:
        """Start connecting every enabled server in the background; returns at once."""
        if self.started:
            return
        self.started = True
        for server in self.servers.values():
            if self.monitor is not None and server.config.enabled and server.service not in self.monitor.names:
                self.monitor.register_check(server.service, server.check, timeout=5.0)
            server.start()

    async def wait_ready(self, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109 - a bounded wait
        """Wait until every server's first start attempt ended (running or failed), at most
        ``timeout`` seconds (default ``[mcp].start_timeout``); returns the servers still starting."""
        if not self.started:
            return []
        waiting = [s for s in self.servers.values() if s.config.enabled]
        limit = self.config.start_timeout if timeout is None else timeout
        settled = await asyncio.gather(*(s.wait_settled(limit) for s in waiting))
        late = [s.name for s, done in zip(waiting, settled, strict=True) if not done]
        if late:
            log.warning("MCP servers still starting after %.1fs: %s", limit, ", ".join(late))
        return late

    async def stop(self) -> None:
        """Stop every server (stdio children included), concurrently; never raises."""
        if not self.started:
            return
        self.started = False
        results = await asyncio.gather(*(s.stop() for s in self.servers.values()), return_exceptions=True)
        for server, result in zip(self.servers.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("stopping MCP server %s: %s", server.name, describe(result))
        if self.monitor is not None:
            for server in self.servers.values():
                if server.service in self.monitor.names:
                    self.monitor.unregister_check(server.service)

    def server(self, name: str) -> McpServer:
        """The server called ``name``; NotFoundError (naming the configured ones) otherwise."""
        found = self.servers.get(name)
        if found is None:
            raise NotFoundError(f"no MCP server {name!r} (configured: {', '.join(self.servers) or 'none'})")
        return found

    def kill(self, name: str) -> int | None:
        """SIGKILL stdio server ``name``'s process (it is restarted with backoff); returns the pid
        it had, None if it was not running. NotFoundError for an unknown name."""
        return self.server(name).kill()

    def statuses(self) -> list[McpServerStatus]:
        """Every configured server as it is now, by name."""
        return [self.servers[name].status() for name in sorted(self.servers)]

    @property
    def errors(self) -> dict[str, str]:
        """``mcp:<server>`` (its last error, while not running) and ``mcp:<server>/<tool>`` (a
        skipped tool) -> one-line reason."""
        found: dict[str, str] = {}
        for server in self.servers.values():
            if server.last_error and server.state in ("failed", "restarting"):
                found[server.service] = server.last_error
            for tool, why in server.skipped.items():
                found[f"{server.service}/{tool}"] = why
        return found
