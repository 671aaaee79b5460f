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

import asyncio
import getpass
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runtime.config import Config
from runtime.core.errors import AppError, describe
from runtime.core.events import BackendStatus, EventBus
from runtime.tools import ToolRegistry
from runtime.tools.plugins import PluginLoader, PluginReport

log = logging.getLogger(__name__)


class BackendHandle(Protocol):
    """An embedded backend process a person may kill and restart (``/chaos``)."""

    @property
    def pid(self) -> int | None: ...

    def running(self) -> bool: ...

    def kill(self) -> None: ...

    async def astart(self) -> Any: ...


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
    """Everything headless a front end needs. Build with :meth:`from_config`, then ``start``."""

    config: Config
    user_id: str
    bus: EventBus = field(default_factory=EventBus)
    resilience: Any = None
    monitor: Any = None
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    plugins: PluginReport = field(default_factory=PluginReport)
    store: Any = None
    sessions: Any = None
    state: Any = None
    memory: Any = None
    llm: Any = None
    agent: Any = None
    chaos: Any = None
    counter: Any = None
    backends: dict[str, BackendHandle] = field(default_factory=dict)
    redis_url: str = ""
    llm_url: str = ""
    started: bool = False
    start_monitor: bool = True
    _redis_client: Any = None
    _embedded_redis: Any = None
    _demo_llm: Any = None

    @property
    def plugin_errors(self) -> dict[str, str]:
        """Plugins (or tools) that failed to load: name -> one-line reason (doctor, UI)."""
        return self.plugins.errors

    @classmethod
    def from_config(
        cls, config: Config, *, user: str | None = None, bus: EventBus | None = None, start_monitor: bool = True
    ) -> Runtime:
        """Build the light parts (guards, monitor, tool registry, plugins); starts nothing,
        opens no connection, imports no heavy library."""
        from runtime.resilience import HealthMonitor, Resilience

        rt = cls(config=config, user_id=user or default_user(config), bus=bus or EventBus())
        rt.resilience = Resilience(config.resilience, rt.bus, clock=time.monotonic)
        rt.monitor = HealthMonitor(rt.bus)
        rt.start_monitor = start_monitor
        rt.tools = ToolRegistry(config.plugins)
        rt.plugins = PluginLoader(config.plugins, rt.tools, monitor=rt.monitor, resilience=rt.resilience).load_all()
        from runtime.host.chaos import Chaos

        rt.chaos = Chaos(rt)
        return rt

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start embedded backends and background work. Never raises for a dead backend:
        the runtime runs degraded, says so (BackendStatus events, health checks)."""
        if self.started:
            return
        self.started = True
        try:
            await self._start_parts()
        except BaseException:
            # A half-started runtime must not leave redis-server or the demo LLM server running
            # behind a caller that never reaches stop() (``async with`` skips __aexit__ here).
            await self.stop()
            raise

    async def _start_parts(self) -> None:
        cfg = self.config
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        await self._start_redis()
        await self._start_llm_server()
        from runtime.context import TokenCounter, context_window_for
        from runtime.context.window import ContextWindowManager

        self.counter = TokenCounter(cfg.llm.effective_model or "gpt-4o-mini")
        await self._build_state()
        self._build_llm()
        self._build_memory()
        window = ContextWindowManager(
            self.counter,
            cfg.context,
            context_window_for(cfg.llm.effective_model, cfg.llm.context_window),
            native_tools=bool(self.llm and self.llm.tools_supported),
        )
        self._build_agent(window)
        if self.memory is not None:
            self.memory.schedule_drain()
        if self.start_monitor:
            self.monitor.start()

    async def _start_redis(self) -> None:
        cfg = self.config
        if cfg.redis.url:
            self.redis_url = cfg.redis.url
            return
        from runtime.core.procs import free_port
        from runtime.state.embedded_redis import EmbeddedRedis

        data_dir = (
            Path(cfg.redis.embedded_data_dir).expanduser() if cfg.redis.embedded_data_dir else cfg.data_path / "redis"
        )
        server = EmbeddedRedis(
            data_dir, port=cfg.redis.embedded_port or free_port(), startup_timeout=cfg.redis.startup_timeout
        )
        self._embedded_redis = server
        self.backends["redis"] = server
        self.bus.publish(BackendStatus(name="redis", status="starting"))
        try:
            # In the loop's thread: the kernel kills the child when its spawning thread exits.
            address = await server.astart()
        except AppError as exc:
            self.redis_url = f"redis://127.0.0.1:{server.port}/0"
            log.error("embedded redis-server did not start: %s; running on the local journal", describe(exc))
            self.bus.publish(BackendStatus(name="redis", status="failed", detail=describe(exc)))
            return
        self.redis_url = address.url
        self.bus.publish(BackendStatus(name="redis", status="running", pid=server.pid, address=address.url))

    async def _start_llm_server(self) -> None:
        cfg = self.config
        self.llm_url = cfg.llm.effective_base_url
        if self.llm_url:
            return
        from runtime.core.procs import free_port
        from runtime.demo.launcher import DemoLLMServer

        server = DemoLLMServer(
            port=free_port(), tokens_per_second=cfg.llm.demo_tokens_per_second, log_path=cfg.data_path / "demo-llm.log"
        )
        self._demo_llm = server
        self.backends["llm"] = server
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
        self._redis_client = make_redis_client(self.redis_url)
        runner = RedisRunner(self._redis_client, self.resilience.guard("redis"))
        self.state = RedisStateStore(runner, key_prefix=cfg.redis.key_prefix)
        self.sessions = SessionManager.from_config(runner, cfg.redis)
        self.store = ConversationStore.from_config(runner, cfg, bus=self.bus, count_tokens=self.counter.count_message)
        try:
            await self.store.open()
        except AppError as exc:
            log.warning("journal replay at start did not finish: %s", describe(exc))
        self.store.start()
        register_redis_health(
            self.monitor, self._redis_client, slow_ping_ms=cfg.redis.slow_ping_ms, on_healthy=self.store.notify_healthy
        )

    def _build_llm(self) -> None:
        from runtime.llm import LLMClient, llm_health_check

        self.llm = LLMClient(
            self.config.llm, self.resilience, base_url=self.llm_url, count_tokens=self.counter.count_text
        )
        self.monitor.register_check("llm", llm_health_check(self.llm))

    def _build_memory(self) -> None:
        if not self.config.memory.enabled:
            return
        from runtime.memory import VectorMemoryStore, check_embeddings, check_memory

        memory = VectorMemoryStore.from_config(self.config, self.resilience, bus=self.bus)
        memory.default_user = self.user_id
        self.memory = memory
        self.monitor.register_check("memory", lambda: check_memory(memory))
        self.monitor.register_check("embeddings", lambda: check_embeddings(memory))

    def _build_agent(self, window: Any) -> None:
        from runtime.agent import Agent
        from runtime.agent.turn_lock import TurnLocks
        from runtime.context.summarize import Summarizer, summary_request
        from runtime.tools.runner import ToolRunner

        cfg = self.config
        llm = self.llm
        store = self.store

        async def summarize_fn(messages: Any) -> str:
            completion = await llm.complete(summary_request(messages), use_fallback=False)
            return completion.text

        from runtime.agent import PromptHistory

        summarizer = Summarizer(
            self.counter,
            cfg.context,
            window.budget,
            reader=PromptHistory(store),
            summarize_fn=summarize_fn,
            swap_fn=store.summarize,
        )
        runner = ToolRunner(self.tools, self.resilience, counter=self.counter)
        locks = TurnLocks(self.state, ttl=cfg.agent.turn_lock_timeout, wait=cfg.agent.turn_lock_timeout)
        self.agent = Agent(
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

    async def stop(self) -> None:
        """Stop background work, close clients, stop embedded backends (idempotent)."""
        if not self.started:
            return
        self.started = False
        # Closers, not coroutines: a coroutine made up front and never awaited (an earlier step
        # cancelled) would only warn, and its part would stay open.
        steps: list[tuple[str, Any, str]] = [
            ("agent", self.agent, "aclose"),
            ("monitor", self.monitor, "stop"),
            ("store", self.store, "close"),
            ("memory", self.memory, "aclose"),
            ("llm", self.llm, "aclose"),
            ("redis client", self._redis_client, "aclose"),
        ]
        for name, part, method in steps:
            if part is None:
                continue
            try:
                await getattr(part, method)()
            except Exception as exc:  # shutdown goes on whatever one part says
                log.warning("stopping %s: %s", name, describe(exc))
        for name, server in (("llm", self._demo_llm), ("redis", self._embedded_redis)):
            if server is None:
                continue
            try:
                await asyncio.to_thread(server.stop)
            except Exception as exc:  # the other server must still be stopped
                log.warning("stopping the %s server: %s", name, describe(exc))
                continue
            self.bus.publish(BackendStatus(name=name, status="stopped"))

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ snapshots

    async def health(self) -> dict[str, Any]:
        """Breakers and fresh health checks as one JSON-ready dict (``holdfast health``)."""
        report = await self.monitor.run_checks()
        return {
            "status": report.status.value,
            "checks": {name: result.to_dict() for name, result in report.checks.items()},
            "breakers": self.resilience.snapshots(),
            "conversation_store": {
                "degraded": bool(self.store and self.store.degraded),
                "pending_writes": self.store.pending_writes if self.store else 0,
            },
            "memory_queue": len(self.memory.queue) if self.memory is not None else 0,
            "plugins": self.plugins.to_dict(),
        }
