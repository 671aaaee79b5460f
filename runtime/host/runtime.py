"""One Runtime wired from one Config: every client, store, guard and the health monitor.

``Runtime.from_config`` builds objects and starts nothing; ``await rt.start()`` (or
``async with rt``) starts the embedded backends (redis-server, the demo LLM server) when no
endpoint is configured, the health monitor, journal replay, the memory queue drain and this
process's session (:mod:`runtime.host.session_keeper`). Start never raises for a dead backend:
the runtime runs degraded and says so through events and health checks. Heavy imports
(lancedb, onnxruntime, openai) happen in ``start``, not at import of this module, so
``holdfast --help`` and the UI's first paint stay fast.

The TUI talks to it only through :class:`runtime.host.facade.RuntimeFacade` (the methods under
"facade" below); the CLI and the tests also use its typed parts (``agent``, ``store``, ``memory``...),
which exist once ``start`` has run (before that, reading one raises :class:`NotStartedError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import logging
import os
import socket
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from runtime.config import Config
from runtime.context.attachments import Attachment
from runtime.core.errors import AppError, InternalError, NotFoundError, ValidationError, describe
from runtime.core.events import BackendStatus, Event, EventBus, RetryScheduled, TurnEvent, UserSaved
from runtime.core.figures import ConversationTotals, ReplyFigures
from runtime.core.ids import validate_user_id
from runtime.core.messages import ChatMessage
from runtime.core.variants import choices_from
from runtime.host.alerts import Alerts
from runtime.host.chaos import BackendHandle, Chaos
from runtime.host.facade import (
    BackendInfo,
    Conversation,
    ConversationPage,
    ExportFormat,
    MemoryHit,
    MemorySearch,
    SessionInfo,
    StoreStatus,
    ToolInfo,
)
from runtime.resilience import HealthMonitor, Resilience
from runtime.tools import ToolRegistry
from runtime.tools.plugins import PluginLoader, PluginReport

if TYPE_CHECKING:
    from runtime.agent import Agent
    from runtime.context import ContextWindowManager, TokenCounter
    from runtime.context.summarize import SummarizeResult
    from runtime.demo.launcher import DemoLLMServer
    from runtime.host.facade import RuntimeFacade
    from runtime.host.session_keeper import SessionKeeper
    from runtime.llm import LLMClient
    from runtime.memory import Memory, VectorMemoryStore
    from runtime.resilience import BreakerSnapshot, HealthReport
    from runtime.state.breaker_sync import BreakerSync
    from runtime.state.client import RedisClient
    from runtime.state.conversations import ConversationStore
    from runtime.state.history import ConversationInfo
    from runtime.state.live import ConversationChanged, LiveUpdates
    from runtime.state.search import SearchHit
    from runtime.state.sessions import Session, SessionManager
    from runtime.state.shared_redis import DataDirRedis
    from runtime.state.store import RedisStateStore
    from runtime.tools import AskPermission
    from runtime.tools.mcp import McpManager

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Messages per conversation that Ctrl+F search reads (the newest ones).
SEARCH_DEPTH = 2000
#: The shortest memory id prefix ``/forget`` accepts, and how many memories it looks through.
MIN_MEMORY_PREFIX = 4
MAX_MEMORIES_LISTED = 100_000

#: Which front end a process is: it is written into the process's session.
Face = Literal["tui", "cli", "serve"]


class NotStartedError(InternalError):
    """A part that exists only after ``await Runtime.start()`` was read before it."""


def default_user(config: Config) -> str:
    """The configured user name (``[agent].user``), else the OS user name, else ``"user"``.

    Raises ValidationError when the OS user name is not a valid user id
    (:func:`runtime.core.ids.validate_user_id`); the message says to set ``--user``.
    """
    if config.agent.user:
        return config.agent.user
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "user"
    try:
        return validate_user_id(name, what="the OS user name")
    except ValidationError as exc:
        raise ValidationError(f"{exc.message}; choose one with --user NAME or [agent].user") from exc


class Runtime:
    """Everything headless a front end needs. Build with :meth:`from_config`, then ``start``.

    Always there: ``config``, ``user_id``, ``bus``, ``resilience`` (guards and breakers),
    ``monitor`` (health checks), ``tools``, ``plugins``, ``chaos``, ``processes`` (embedded
    backends by name). After ``start``: ``store``, ``sessions``, ``state``, ``llm``, ``agent``,
    ``counter``; ``memory`` is None when ``[memory].enabled`` is false.
    """

    def __init__(
        self,
        config: Config,
        user_id: str,
        *,
        bus: EventBus,
        resilience: Resilience,
        monitor: HealthMonitor,
        tools: ToolRegistry,
        plugins: PluginReport,
        start_monitor: bool = True,
        face: Face = "cli",
    ) -> None:
        self.config = config
        self.user_id = user_id
        self.bus = bus
        self.resilience = resilience
        self.monitor = monitor
        self.tools = tools
        self.plugins = plugins
        self.start_monitor = start_monitor
        self.face: Face = face
        #: Start the embedded demo LLM server with the runtime when no endpoint is configured.
        #: A command that never calls the model (memory, conversations, sessions) sets False
        #: before ``start``: about a second less per command; its client then points at a free
        #: loopback port with nothing behind it, so a model call fails at once (never hangs).
        self.start_demo_llm = True
        #: Embedded backend processes this runtime started, by name (``redis``, ``llm``).
        self.processes: dict[str, BackendHandle] = {}
        self.chaos = Chaos(self.processes, resilience.breakers)
        #: Alerts of every face (breaker opened, journal backlog, recoveries; a face may fire its
        #: own): AlertRaised events and webhooks, from ``start`` on (:mod:`runtime.host.alerts`).
        self.alerts = Alerts(config.alerts, resilience.guard, bus=bus)
        self.redis_url = ""
        # Why the embedded redis-server could not start ("" when it did or a URL is configured):
        # the redis health check's error and the conversation store's degraded reason.
        self.redis_start_error = ""
        self.llm_url = ""
        self.memory: VectorMemoryStore | None = None
        #: Set once ``start`` has built every part.
        self.started = False
        self._starting = False
        self._store: ConversationStore | None = None
        self._sessions: SessionManager | None = None
        self._state: RedisStateStore | None = None
        self._llm: LLMClient | None = None
        self._agent: Agent | None = None
        self._counter: TokenCounter | None = None
        self._keeper: SessionKeeper | None = None
        self._redis_client: RedisClient | None = None
        self._breaker_sync: BreakerSync | None = None
        self._live: LiveUpdates | None = None
        self._embedded_redis: DataDirRedis | None = None
        self._demo_llm: DemoLLMServer | None = None
        self._unsubscribe: Callable[[], None] | None = None
        # Each conversation's reply totals, by id, with the (updated_at, message count) read.
        self._totals: dict[str, tuple[tuple[float, int], ConversationTotals]] = {}
        #: The configured MCP servers once their background start began (None: none configured).
        self.mcp: McpManager | None = None
        self._mcp_boot: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        user: str | None = None,
        bus: EventBus | None = None,
        start_monitor: bool = True,
        face: Face = "cli",
        clock: Callable[[], float] = time.monotonic,
    ) -> Runtime:
        """Build the light parts (guards, monitor, tool registry, plugins); starts nothing,
        opens no connection, imports no heavy library. ``user`` defaults to :func:`default_user`;
        ``face`` is written into this process's session; ``clock`` (monotonic seconds) drives
        the breakers. Raises ValidationError for a malformed user name."""
        bus = bus or EventBus()
        resilience = Resilience(config.resilience, bus, clock=clock)
        monitor = HealthMonitor(bus)
        tools = ToolRegistry(config.plugins)
        plugins = PluginLoader(config.plugins, tools, monitor=monitor, resilience=resilience).load_all()
        return cls(
            config,
            user or default_user(config),
            bus=bus,
            resilience=resilience,
            monitor=monitor,
            tools=tools,
            plugins=plugins,
            start_monitor=start_monitor,
            face=face,
        )

    # ------------------------------------------------------------ parts that exist after start

    @property
    def store(self) -> ConversationStore:
        """The conversation store (Redis, or the local journal while Redis is out)."""
        return _started(self._store, "store")

    @property
    def sessions(self) -> SessionManager:
        """The spec's SessionManager on this runtime's Redis."""
        return _started(self._sessions, "sessions")

    @property
    def state(self) -> RedisStateStore:
        """The spec's RedisStateStore (key/value, locks, pub/sub)."""
        return _started(self._state, "state")

    @property
    def llm(self) -> LLMClient:
        """The LLM client. Raises NotStartedError before :meth:`start`."""
        return _started(self._llm, "llm")

    @property
    def agent(self) -> Agent:
        """The agent that runs turns. Raises NotStartedError before :meth:`start`."""
        return _started(self._agent, "agent")

    @property
    def counter(self) -> TokenCounter:
        """The token counter of the configured model."""
        return _started(self._counter, "counter")

    @property
    def session_id(self) -> str | None:
        """This process's session id, or None (not started, Redis unreachable)."""
        return self._keeper.session_id if self._keeper is not None else None

    @property
    def plugin_errors(self) -> dict[str, str]:
        """Plugins (or tools) that failed to load, and MCP servers (``mcp:NAME``) or their tools
        (``mcp:NAME/TOOL``) that did not: name -> one-line reason (doctor, UI)."""
        return {**self.plugins.errors, **(self.mcp.errors if self.mcp is not None else {})}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start embedded backends and background work. Never raises for a dead backend:
        the runtime runs degraded, says so (BackendStatus events, health checks)."""
        if self._starting:
            return
        self._starting = True
        try:
            await self._start_parts()
        except BaseException:
            # A half-started runtime must not leave redis-server or the demo LLM server running
            # behind a caller that never reaches stop() (``async with`` skips __aexit__ here).
            await self.stop()
            raise
        self.started = True

    async def _start_parts(self) -> None:
        from runtime.config import storage_error

        cfg = self.config
        try:
            cfg.data_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "create the data dir", cfg.data_path) from exc
        self._start_mcp()
        await self._start_redis()
        await self._start_llm_server()
        from runtime.context import ContextWindowManager, TokenCounter, context_window_for

        self._counter = TokenCounter(cfg.llm.effective_model or "gpt-4o-mini")
        await self._build_state()
        self._start_alerts()
        llm = self._build_llm()
        self._build_memory()
        from runtime.llm.prompt_tools import describe_tools

        window = ContextWindowManager(
            self._counter,
            cfg.context,
            context_window_for(cfg.llm.effective_model, cfg.llm.context_window),
            native_tools=llm.tools_supported,
            tools_text=describe_tools,  # the client writes that text; the window counts it
        )
        self._build_agent(window)
        if self.memory is not None:
            self.memory.schedule_drain()
        if self.start_monitor:
            self.monitor.start()
        await self._hold_session()
        if self.face != "tui":
            # A headless turn needs the servers' tools; the TUI never waits (its first turn uses
            # the tools that are up, the others join as they come).
            await self.wait_for_mcp()

    def _start_mcp(self) -> None:
        """Start the ``[mcp.servers]`` in the background; returns at once (the SDK's import, about
        a second, happens in a thread so the event loop and the UI's first frames never wait)."""
        if self.config.mcp.servers and self._mcp_boot is None:
            self._mcp_boot = asyncio.get_running_loop().create_task(self._boot_mcp(), name="mcp boot")

    async def _boot_mcp(self) -> None:
        import importlib

        await asyncio.to_thread(importlib.import_module, "runtime.tools.mcp")
        from runtime.tools.mcp import McpManager

        manager = McpManager(
            self.config.mcp,
            self.tools,
            self.resilience,
            monitor=self.monitor,
            bus=self.bus,
            log_dir=self.config.data_path / "mcp",
        )
        self.mcp = manager
        self.chaos.mcp = manager
        manager.start()

    async def wait_for_mcp(self, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109 - a bounded wait
        """Wait until every MCP server's first start ended (running or failed), at most ``timeout``
        seconds (default ``[mcp].start_timeout``); returns the servers still starting."""
        if self._mcp_boot is None:
            return []
        try:
            await self._mcp_boot
        except Exception as exc:  # noqa: BLE001 - MCP must never stop the runtime: it runs without
            log.error("MCP servers could not be started: %s", describe(exc))
            return list(self.config.mcp.servers)
        return await self.mcp.wait_ready(timeout) if self.mcp is not None else []

    async def load_mcp_tools(self, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109 - a bounded wait
        """Start only the ``[mcp.servers]`` (no Redis, no LLM) and wait for their tools to join
        :attr:`tools`, at most ``timeout`` seconds (default ``[mcp].start_timeout``); returns the
        servers still starting. For a runtime that is not started (``holdfast tools``); stop them
        with :meth:`stop_mcp`."""
        self._start_mcp()
        return await self.wait_for_mcp(timeout)

    async def stop_mcp(self) -> None:
        """Stop every MCP server this runtime started (see :meth:`load_mcp_tools`)."""
        await self._stop_mcp()

    async def _stop_mcp(self) -> None:
        boot, self._mcp_boot = self._mcp_boot, None
        if boot is not None and not boot.done():
            boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await boot
        if self.mcp is not None:
            await self.mcp.stop()

    async def _start_redis(self) -> None:
        cfg = self.config
        if cfg.redis.url:
            from runtime.state.client import cluster_url

            # [redis].cluster = true turns a redis:// URL into the cluster client's redis+cluster://.
            self.redis_url = cluster_url(cfg.redis.url, cfg.redis.cluster)
            return
        from runtime.core.procs import free_port
        from runtime.state.shared_redis import DataDirRedis

        # The data dir's one server, shared with every other Holdfast process on this data dir.
        server = DataDirRedis(
            self._redis_data_dir(),
            port=cfg.redis.embedded_port,
            keep_running=cfg.redis.embedded_keep_running,
            startup_timeout=cfg.redis.startup_timeout,
        )
        self._embedded_redis = server
        self.processes["redis"] = server
        self.bus.publish(BackendStatus(name="redis", status="starting"))
        try:
            address = await server.aattach()
        except AppError as exc:
            # A port nothing listens on: this process runs on the local journal. Never the
            # configured port, where another data dir's server may answer.
            self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
            log.error("embedded redis-server not available: %s; running on the local journal", describe(exc))
            self.redis_start_error = (
                f"embedded Redis could not start: {exc.message}; or set [redis].url to a running Redis"
            )
            self.bus.publish(BackendStatus(name="redis", status="failed", detail=describe(exc)))
            return
        self.redis_url = address.url
        self.bus.publish(BackendStatus(name="redis", status="running", pid=server.pid, address=address.url))

    def _redis_data_dir(self) -> Path:
        """Where the embedded redis-server keeps its AOF: ``[redis].embedded_data_dir``, else
        ``<data dir>/redis``."""
        configured = self.config.redis.embedded_data_dir
        return Path(configured).expanduser() if configured else self.config.data_path / "redis"

    async def _start_llm_server(self) -> None:
        cfg = self.config
        self.llm_url = cfg.llm.effective_base_url
        if self.llm_url:
            return
        from runtime.core.procs import free_port
        from runtime.demo.launcher import DemoLLMServer

        if not self.start_demo_llm:
            self.llm_url = f"http://127.0.0.1:{free_port()}/v1"
            return
        server = DemoLLMServer(
            port=free_port(), tokens_per_second=cfg.llm.demo_tokens_per_second, log_path=cfg.data_path / "demo-llm.log"
        )
        self._demo_llm = server
        self.processes["llm"] = server
        self.llm_url = f"http://127.0.0.1:{server.port}/v1"
        try:
            # Spawned in the loop's thread on purpose (see _start_redis).
            await server.astart()
        except AppError as exc:
            log.error("demo LLM server did not start: %s", describe(exc))
            self.bus.publish(BackendStatus(name="llm", status="failed", detail=describe(exc)))
            return
        self.bus.publish(BackendStatus(name="llm", status="running", pid=server.pid, address=server.url))

    async def _build_state(self) -> None:
        from runtime.state.client import RedisRunner, make_redis_client
        from runtime.state.conversations import ConversationStore
        from runtime.state.health import register_redis_health
        from runtime.state.sessions import SessionManager
        from runtime.state.store import RedisStateStore

        cfg = self.config
        client = self._redis_client = make_redis_client(self.redis_url)
        runner = RedisRunner(client, self.resilience.guard("redis"))
        self._state = RedisStateStore(runner, key_prefix=cfg.redis.key_prefix)
        self._sessions = SessionManager.from_config(runner, cfg.redis)
        store = self._store = ConversationStore.from_config(
            runner, cfg, bus=self.bus, count_tokens=self.counter.count_message
        )
        store.unavailable_reason = self.redis_start_error
        try:
            await store.open()
        except AppError as exc:
            log.warning("journal replay at start did not finish: %s", describe(exc))
        store.start()
        register_redis_health(
            self.monitor,
            client,
            slow_ping_ms=cfg.redis.slow_ping_ms,
            on_healthy=store.notify_healthy,
            key_prefix=cfg.redis.key_prefix,
            unavailable_reason=self.redis_start_error,
        )
        from runtime.state.breaker_sync import BreakerSync

        # Breakers learn from the other processes on this Redis (issue 19); never on the hot path.
        self._breaker_sync = BreakerSync(
            self._state,
            runner,
            self.resilience.breakers,
            self.bus,
            key_prefix=cfg.redis.key_prefix,
            scope=self._breaker_scope,
        )
        await self._breaker_sync.start(timeout=0.5)
        from runtime.state.live import LiveUpdates

        # Live updates (issue 19): this process's turns are announced (the appends announce
        # themselves); faces subscribe through watch_conversations.
        self._live = LiveUpdates(
            runner, key_prefix=cfg.redis.key_prefix, user_id=self.user_id, bus=self.bus, own_message=store.wrote
        )
        self._live.start()
        # The monitor's probes are the breakers' half-open probes: they heal with no traffic.
        self.monitor.link_breaker("redis", self.resilience.guard("redis").breaker)

    def _breaker_scope(self, name: str) -> str:
        """The backend behind breaker ``name`` for :class:`BreakerSync`, so only processes that
        share a backend share its breaker: for ``llm``, a short hash of the endpoint URL this
        process talks to (each process's own demo LLM is another backend); for ``mcp:NAME``, a
        hash of an HTTP server's URL, or this process's pid for a stdio server (each process
        runs its own child, so its crash is nobody else's); "" (the name alone) for the others."""
        url = ""
        if name == "llm":
            url = self._llm.base_url if self._llm is not None else self.config.llm.effective_base_url
        elif name.startswith("mcp:"):
            server = self.config.mcp.servers.get(name.removeprefix("mcp:"))
            url = server.url if server is not None and server.url else f"stdio:{socket.gethostname()}:{os.getpid()}"
        return hashlib.sha256(url.encode()).hexdigest()[:12] if url else ""

    def _start_alerts(self) -> None:
        from runtime.host.alerts import RedisAlertClaims
        from runtime.state.client import RedisRunner

        assert self._redis_client is not None  # built by _build_state
        claims = RedisAlertClaims(
            RedisRunner(self._redis_client, self.resilience.guard("redis")), self.config.redis.key_prefix
        )
        self.alerts.start(lambda: self.store_status().pending_writes, claims=claims)

    def _build_llm(self) -> LLMClient:
        from runtime.llm import LLMClient, llm_health_check
        from runtime.llm.fallbacks import RETRY_HINTS

        llm = self._llm = LLMClient(
            self.config.llm, self.resilience, base_url=self.llm_url, count_tokens=self.counter.count_text
        )
        # The degraded notice names the command that resends the message in this face.
        llm.llm_fallbacks.retry_hint = RETRY_HINTS[self.face]
        self.monitor.register_check("llm", llm_health_check(llm))
        self.monitor.link_breaker("llm", llm.guard.breaker, degraded_is_down=True)
        return llm

    def _build_memory(self) -> None:
        if not self.config.memory.enabled:
            return
        from runtime.memory import VectorMemoryStore, check_embeddings, check_memory

        memory = VectorMemoryStore.from_config(self.config, self.resilience, bus=self.bus)
        memory.default_user = self.user_id
        self.memory = memory
        self.monitor.register_check("memory", lambda: check_memory(memory))
        self.monitor.register_check("embeddings", lambda: check_embeddings(memory))
        self.monitor.link_breaker("memory", self.resilience.guard("memory").breaker)
        self.monitor.link_breaker("embeddings", self.resilience.guard("embeddings").breaker)

    def _build_agent(self, window: ContextWindowManager) -> None:
        from runtime.agent import Agent, PromptHistory
        from runtime.agent.turn_lock import TurnLocks
        from runtime.context.summarize import Summarizer, summary_request
        from runtime.tools.runner import ToolRunner

        cfg = self.config
        llm, store, counter = self.llm, self.store, self.counter

        async def summarize_fn(messages: Sequence[ChatMessage]) -> str:
            completion = await llm.complete(summary_request(messages), use_fallback=False)
            return completion.text

        summarizer = Summarizer(
            counter,
            cfg.context,
            window.budget,
            reader=PromptHistory(store),
            summarize_fn=summarize_fn,
            swap_fn=store.summarize,
        )
        runner = ToolRunner(self.tools, self.resilience, counter=counter)
        locks = TurnLocks(self.state, ttl=cfg.agent.turn_lock_timeout, wait=cfg.agent.turn_lock_timeout)
        self._agent = Agent(
            cfg,
            user_id=self.user_id,
            store=store,
            llm=llm,
            window=window,
            tools=self.tools,
            runner=runner,
            bus=self.bus,
            memory=self.memory,
            state=self.state,
            resilience=self.resilience,
            monitor=self.monitor,
            summarizer=summarizer,
            locks=locks,
        )

    async def _hold_session(self) -> None:
        """Create this process's session (when Redis answered at start) and keep it alive."""
        from runtime.host.session_keeper import SessionKeeper

        keeper = self._keeper = SessionKeeper(
            self.sessions,
            self.user_id,
            {"face": self.face, "pid": os.getpid(), "host": socket.gethostname()},
        )
        # A turn in any conversation (TUI or ``holdfast chat``) makes it the active one.
        self._unsubscribe = self.bus.add_listener(self._track_active)
        if not self.store.degraded:
            await keeper.open()
        keeper.start()

    def _track_active(self, event: Event) -> None:
        if isinstance(event, UserSaved) and self._keeper is not None:
            self._keeper.note_active(event.conversation_id)
        elif isinstance(event, RetryScheduled) and not self.monitor.running:
            # No poller in this process (the CLI): a retried backend is probed once, so a dead
            # one is known down by the next attempt and its retries stop there.
            self.monitor.probe_soon(event.service)

    async def stop(self) -> None:
        """Stop background work, delete this process's session, close clients, stop embedded
        backends (idempotent; a part that fails to stop is logged and the others still stop)."""
        if not self._starting:
            return
        self._starting = False
        self.started = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        # Closers, not coroutines: a coroutine made up front and never awaited (an earlier step
        # cancelled) would only warn, and its part would stay open.
        steps: list[tuple[str, Callable[[], object] | None]] = [
            ("agent", self._agent.aclose if self._agent else None),
            ("alerts", self.alerts.aclose),
            ("mcp servers", self._stop_mcp),
            ("session", self._keeper.close if self._keeper else None),
            ("monitor", self.monitor.stop),
            ("breaker sync", self._breaker_sync.stop if self._breaker_sync else None),
            ("live updates", self._live.stop if self._live else None),
            ("store", self._store.close if self._store else None),
            ("memory", self.memory.aclose if self.memory else None),
            ("llm", self._llm.aclose if self._llm else None),
            ("redis client", self._redis_client.aclose if self._redis_client else None),
        ]
        for name, close in steps:
            if close is None:
                continue
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - shutdown goes on whatever one part says
                log.warning("stopping %s: %s", name, describe(exc))
        # The embedded Redis's stop() leaves it: the last process on the data dir stops it.
        servers: tuple[tuple[str, DemoLLMServer | DataDirRedis | None], ...] = (
            ("llm", self._demo_llm),
            ("redis", self._embedded_redis),
        )
        for name, server in servers:
            if server is None:
                continue
            try:
                await asyncio.to_thread(server.stop)
            except Exception as exc:  # noqa: BLE001 - the other server must still be stopped
                log.warning("stopping the %s server: %s", name, describe(exc))
                continue
            self.bus.publish(BackendStatus(name=name, status="stopped"))

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ snapshots

    async def health(self) -> dict[str, object]:
        """Breakers and fresh health checks as one JSON-ready dict (``holdfast health``)."""
        report = await self.monitor.run_checks()
        status = self.store_status()
        return {
            "status": report.status.value,
            "checks": {name: result.to_dict() for name, result in report.checks.items()},
            "breakers": self.resilience.snapshots(),
            "conversation_store": {"degraded": status.degraded, "pending_writes": status.pending_writes},
            "memory_queue": len(self.memory.queue) if self.memory is not None else 0,
            "plugins": self.plugins.to_dict(),
            "mcp": [s.to_dict() for s in self.mcp.statuses()] if self.mcp is not None else [],
        }

    # ------------------------------------------------------------ facade: lifecycle

    @property
    def memory_enabled(self) -> bool:
        """True when long-term memory is configured on (``[memory].enabled``)."""
        return self.config.memory.enabled

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` with every runtime event; returns the unsubscribe function."""
        return self.bus.add_listener(listener)

    def set_health_interval(self, seconds: float) -> None:
        """How often the background monitor re-runs every health check, in seconds."""
        if seconds <= 0:
            raise ValidationError(f"the health interval must be > 0 seconds, got {seconds}")
        self.monitor.interval = seconds

    # ------------------------------------------------------------ facade: conversations and sessions

    def new_conversation_id(self) -> str:
        """A fresh conversation id; the conversation is created by its first turn."""
        from runtime.state.conversations import new_conversation_id

        return new_conversation_id()

    async def list_conversations(self) -> list[Conversation]:
        """This user's conversations, most recently updated first."""
        return (await self.conversation_page(self.user_id)).conversations

    async def conversation_page(
        self, user_id: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> ConversationPage:
        """A page of ``user_id``'s conversations (None: this runtime's user), most recently
        updated first, ties broken by id so pages never overlap: up to ``limit`` (None: all)
        from position ``offset``. The one listing every face uses (the TUI's sidebar, the CLI,
        ``GET /v1/conversations``). An offset past the end is an empty last page.

        Raises ValidationError for ``limit`` < 1, ``offset`` < 0 or an invalid user id.
        """
        if limit is not None and limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        if offset < 0:
            raise ValidationError(f"offset must be 0 or more, got {offset}")
        infos = await self.store.list_conversations(self.user_id if user_id is None else user_id)
        ordered = sorted((_conversation(i) for i in infos), key=lambda c: (c.updated_at, c.id), reverse=True)
        end = len(ordered) if limit is None else offset + limit
        return ConversationPage(ordered[offset:end], len(ordered), end if end < len(ordered) else None)

    async def conversation_totals(self, conversations: Sequence[Conversation]) -> dict[str, ConversationTotals]:
        """Each conversation's replies summed (tokens and cost, issue 17), by id: the figures
        stored on its replies, archived (summarised) ones included. A conversation is read again
        only after it changed (same ``updated_at`` and message count: the last totals), a few at
        a time; one that cannot be read now (Redis out) is left out of the answer."""
        gate = asyncio.Semaphore(8)

        async def one(conv: Conversation) -> tuple[str, ConversationTotals] | None:
            stamp = (conv.updated_at, conv.message_count)
            known = self._totals.get(conv.id)
            if known is not None and known[0] == stamp:
                return conv.id, known[1]
            async with gate:
                try:
                    dump = await self.store.dump(conv.id)
                except AppError as exc:
                    log.info("totals of %s unknown: %s", conv.id, describe(exc))
                    return None
            figures = (ReplyFigures.of_message(m.metadata) for m in [*dump.archived, *dump.messages])
            totals = ConversationTotals.of(f for f in figures if f is not None)
            self._totals[conv.id] = (stamp, totals)
            return conv.id, totals

        found = await asyncio.gather(*(one(c) for c in conversations))
        return dict(pair for pair in found if pair is not None)

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """One of this user's conversations; NotFoundError if missing or another user's. Its
        settings, as read now, are what this process's next turns in it use (a model or variant
        picked in another terminal holds here once the conversation is opened again)."""
        info = await self.store.get(conversation_id)
        if info.user_id != self.user_id:
            raise NotFoundError(f"conversation {conversation_id} does not exist")
        if self._agent is not None:
            self._agent.history.settings[conversation_id] = dict(info.settings)
        return _conversation(info)

    async def branch_conversation(self, conversation_id: str, at_seq: int) -> str:
        """Branch one of this user's conversations after its message ``at_seq`` (see
        :meth:`runtime.state.conversations.ConversationStore.branch`); the new id."""
        return await self.store.branch(conversation_id, at_seq, user_id=self.user_id)

    async def read_messages(
        self, conversation_id: str, limit: int, *, before_seq: int | None = None
    ) -> list[ChatMessage]:
        """Up to ``limit`` stored messages (hidden ones included), oldest first, before ``before_seq``."""
        return await self.store.read_tail(conversation_id, limit, before_seq=before_seq)

    async def search_conversations(self, query: str, limit: int = 20) -> list[SearchHit]:
        """This user's conversations whose title or messages hold every word of ``query``, best
        first (at most ``limit``); each hit points at its best message. Reads the newest
        ``SEARCH_DEPTH`` messages of each conversation (one Redis read each, concurrently)."""
        from runtime.state import search

        if not search.terms(query):
            return []
        infos = await self.store.list_conversations(self.user_id)

        async def one(info: ConversationInfo) -> search.SearchHit | None:
            messages = await self.store.read_tail(info.id, SEARCH_DEPTH)
            return search.match(query, info.id, info.title, messages, info.updated_at)

        return search.rank(await asyncio.gather(*(one(i) for i in infos)))[:limit]

    async def rename_conversation(self, conversation_id: str, title: str) -> None:
        """Retitle a conversation (ValidationError for an empty or over-long title)."""
        await self.store.rename(conversation_id, title)

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation and everything stored with it."""
        await self.store.delete(conversation_id)

    async def export_conversation(self, conversation_id: str, fmt: ExportFormat) -> str:
        """The conversation as Markdown (``md``) or JSON (``json``) text; needs Redis."""
        if fmt == "json":
            return await self.store.export_json(conversation_id)
        return await self.store.export_markdown(conversation_id)

    def set_active_conversation(self, conversation_id: str) -> None:
        """The UI shows ``conversation_id``: written into this process's session and the user's
        last-conversation pointer in the background (kept pending while Redis is out)."""
        if self._keeper is not None:
            self._keeper.note_active(conversation_id)

    def watch_conversations(self, listener: Callable[[ConversationChanged], None]) -> Callable[[], None]:
        """Call ``listener`` (in the event loop's thread) with every change to this user's
        conversations made by any process on this Redis: messages, titles, deletions, turns
        starting and ending elsewhere, and ``resync`` after each (re)subscription and when the
        store leaves degraded mode (see
        :mod:`runtime.state.live`). Only this user's changes ever arrive. Returns the function
        that stops the listener. Raises NotStartedError before :meth:`start`."""
        return _started(self._live, "live updates").watch(listener)

    def wrote_message(self, message_id: str) -> bool:
        """True when this process appended the message ``message_id`` (one of its recent appends)."""
        return self._store is not None and self._store.wrote(message_id)

    async def turn_running_elsewhere(self, conversation_id: str) -> bool:
        """True when a turn of ``conversation_id`` runs in another process (its turn lock is
        held in Redis, not by this runtime); False when none does or Redis cannot tell (out)."""
        try:
            return await self.agent.locks.held_elsewhere(conversation_id)
        except AppError as exc:
            log.info("turn lock of %s unknown: %s", conversation_id, describe(exc))
            return False

    async def last_conversation(self) -> str | None:
        """The conversation this user was last in, in any process; None if unknown or Redis is out."""
        try:
            return await self.sessions.last_conversation(self.user_id)
        except AppError as exc:
            log.info("last conversation unknown: %s", describe(exc))
            return None

    async def list_sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        """Live sessions of ``user_id`` (default: this runtime's user), most recently seen first.
        Raises ValidationError for a malformed user id, ServiceUnavailableError when Redis is out."""
        own = self.session_id
        sessions = await self.sessions.get_user_sessions(user_id or self.user_id)
        return [_session_info(s, current=s.id == own) for s in sessions]

    # ------------------------------------------------------------ facade: turns

    def run_turn(
        self,
        conversation_id: str,
        text: str,
        *,
        ask_permission: AskPermission | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        """Run one turn (see :meth:`runtime.agent.Agent.run_turn`)."""
        return self.agent.run_turn(conversation_id, text, ask_permission=ask_permission, attachments=attachments)

    def retry_turn(
        self, conversation_id: str, *, ask_permission: AskPermission | None = None
    ) -> AsyncGenerator[TurnEvent, None]:
        """Resend the last user message (see :meth:`runtime.agent.Agent.retry_turn`)."""
        return self.agent.retry_turn(conversation_id, ask_permission=ask_permission)

    async def set_system_prompt(self, conversation_id: str, prompt: str) -> None:
        """Store a new system prompt for the conversation (creating it if it has no message yet)."""
        await self.agent.set_system_prompt(conversation_id, prompt)

    async def set_conversation_model(self, conversation_id: str, model: str) -> None:
        """Store ``model`` as the conversation's model; its later turns ask for it."""
        await self.agent.set_conversation_model(conversation_id, model)

    async def choose_variant(self, conversation_id: str, user_message_id: str, turn_id: str, latest_turn: str) -> None:
        """Make ``turn_id``'s reply the answer to ``user_message_id`` (see :mod:`runtime.core.variants`)."""
        await self.agent.choose_variant(conversation_id, user_message_id, turn_id, latest_turn)

    async def summarize(self, conversation_id: str, *, force: bool = False) -> SummarizeResult | None:
        """Summarise the older part now if the history passes ``[context].summarize_at`` (or below
        it with ``force``); None if nothing was due."""
        return await self.agent.summarize_now(conversation_id, force=force)

    # ------------------------------------------------------------ facade: models and tools

    async def list_models(self) -> list[str]:
        """Model ids the endpoint serves (``GET /models``)."""
        return await self.llm.list_models()

    async def current_model(self) -> str:
        """The model turns use (the configured one, else the endpoint's first)."""
        return await self.llm.model()

    def set_model(self, name: str) -> None:
        """Use ``name`` for the following turns of this process."""
        self.llm.set_model(name)

    def list_tools(self) -> list[ToolInfo]:
        """Registered tools by name, with their effective permission and first line of help."""
        tools = []
        for name in self.tools.names():
            tool = self.tools.get(name)
            lines = (tool.description if tool is not None else "").splitlines()
            tools.append(ToolInfo(name, str(self.tools.permission(name)), lines[0] if lines else ""))
        return tools

    # ------------------------------------------------------------ facade: memory

    def _memory(self) -> VectorMemoryStore:
        if self.memory is None:
            raise ValidationError("long-term memory is disabled ([memory].enabled = false)")
        return self.memory

    async def search_memories(self, query: str) -> MemorySearch:
        """This user's memories closest to ``query`` (best first; degraded when memory is down)."""
        recall = await self._memory().search_memories(query, self.user_id)
        return MemorySearch(tuple(_hit(m) for m in recall.memories), recall.degraded, recall.reason)

    async def remember(self, text: str, conversation_id: str = "") -> str:
        """Store a memory for this user; returns its id."""
        return await self._memory().store_memory(self.user_id, conversation_id, text)

    async def forget_memory(self, memory_id: str) -> bool:
        """Delete one of this user's memories; False if it did not exist."""
        return await self._memory().forget(self.user_id, memory_id)

    async def find_memory(self, prefix: str) -> str:
        """The full id of this user's one memory whose id starts with ``prefix`` (see the facade)."""
        wanted = prefix.strip().lower()
        if len(wanted) < MIN_MEMORY_PREFIX:
            raise ValidationError(f"give at least {MIN_MEMORY_PREFIX} characters of the memory id")
        memories = await self._memory().list(self.user_id, limit=MAX_MEMORIES_LISTED)
        found = sorted({m.id for m in memories if m.id.lower().startswith(wanted)})
        if not found:
            raise NotFoundError(f"no memory id starts with {prefix!r}")
        if len(found) > 1:
            raise ValidationError(f"{len(found)} memory ids start with {prefix!r}: give more characters")
        return found[0]

    # ------------------------------------------------------------ facade: resilience and health

    def breaker_snapshots(self) -> list[BreakerSnapshot]:
        """Every breaker as it is now (in-memory)."""
        return self.resilience.breakers.snapshots()

    def breaker_snapshot(self, name: str) -> BreakerSnapshot | None:
        """One breaker as it is now, or None if no call has made it yet."""
        if name not in self.resilience.breakers:
            return None
        return self.resilience.breakers.get(name).snapshot()

    def reset_breakers(self, names: Sequence[str] | None = None) -> list[str]:
        """Close the named breakers (None: every one); returns the names reset.
        NotFoundError (nothing reset) if a name is unknown."""
        registry = self.resilience.breakers
        known = sorted(b.name for b in registry)
        chosen = list(names) if names is not None else known
        unknown = [n for n in chosen if n not in registry]
        if unknown:
            raise NotFoundError(f"no breaker {unknown[0]!r}; known: {', '.join(known) or 'none'}")
        for name in chosen:
            registry.get(name).reset()
        return chosen

    async def check_health(self) -> HealthReport:
        """Run every health check now (each bounded by its timeout) and publish changes."""
        return await self.monitor.run_checks()

    def health_snapshot(self) -> HealthReport | None:
        """The health monitor's last round (in-memory, no backend call); None before the first."""
        return self.monitor.snapshot()

    def backends(self) -> dict[str, BackendInfo]:
        """The embedded backend processes by name, with pid and whether each runs now."""
        out = {}
        for name, process in self.processes.items():
            running = process.running()
            out[name] = BackendInfo(name, process.pid if running else None, running, process.url)
        return out

    def store_status(self) -> StoreStatus:
        """Whether conversations are being journaled locally (Redis out), and how many writes wait."""
        if self._store is None:
            return StoreStatus(degraded=False, pending_writes=0)
        return StoreStatus(self._store.degraded, self._store.pending_writes)

    async def probe_llm(self) -> None:
        """One guarded call to the LLM (``GET /models``): a half-open breaker's probe."""
        try:
            await self.llm.list_models()
        except AppError as exc:
            log.info("llm recovery probe failed: %s", describe(exc))


def _started(part: T | None, name: str) -> T:
    if part is None:
        raise NotStartedError(f"the runtime's {name} exists only after `await runtime.start()`")
    return part


def _conversation(info: ConversationInfo) -> Conversation:
    return Conversation(
        id=info.id,
        title=info.title,
        created_at=info.created_at,
        updated_at=info.updated_at,
        message_count=info.message_count,
        system_prompt=info.system_prompt,
        parent_id=info.parent_id,
        fork_seq=info.fork_seq,
        model=info.settings.get("model", ""),
        variant_choices=choices_from(info.settings),
    )


def _hit(memory: Memory) -> MemoryHit:
    return MemoryHit(memory.id, memory.content, memory.score, memory.type)


def _session_info(session: Session, *, current: bool) -> SessionInfo:
    data = session.data
    pid = data.get("pid")
    return SessionInfo(
        id=session.id,
        user_id=session.user_id,
        face=str(data.get("face") or "?"),
        pid=pid if isinstance(pid, int) else None,
        host=str(data.get("host") or ""),
        active_conversation_id=session.active_conversation_id,
        created_at=session.created_at,
        last_seen=session.last_accessed,
        expires_at=session.expires_at,
        current=current,
    )


if TYPE_CHECKING:
    # mypy proves here that Runtime is a RuntimeFacade: a missing or mistyped method fails the build.
    def _is_a_facade(runtime: Runtime) -> RuntimeFacade:
        return runtime
