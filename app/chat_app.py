"""The Holdfast Textual app: layout, the runtime's lifecycle, turns, commands and live panels.

The first frame is drawn before anything heavy happens: the runtime is imported and started
in a background worker (heavy libraries are imported in a thread first), with progress in
the Health panel. Runtime events arrive through an :class:`EventBus` listener and become
Textual messages; panels change only from those events and from in-memory snapshots, never
by polling a backend. Turns and commands run in workers; an exception in a worker becomes a
visible notice, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

from rich.console import RenderableType
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from app import ui_state
from app.alerts_view import show_alert
from app.block_actions import BlockActions
from app.command_handlers import CommandHandlers
from app.commands import COMMANDS, CommandError, is_command, parse
from app.edit_flow import EditError, EditFlow, mark_branch_point
from app.layout import WIDE, panels_can_be_inline, plan, sidebar_can_be_inline, welcome_compact
from app.live_view import LiveView
from app.safe_text import plural
from app.screens.confirm import ConfirmScreen
from app.screens.model_picker import ModelPickerScreen
from app.screens.permission import PermissionScreen
from app.screens.text_prompt import TextPromptScreen
from app.signals import install_exit_signals
from app.turn_view import TurnView, render_history
from app.widgets.backend_lines import BackendLines
from app.widgets.block_nav import BlockNav
from app.widgets.breakers_panel import BreakersPanel, breaker_order
from app.widgets.chat_log import ChatLog
from app.widgets.composer import Composer
from app.widgets.context_panel import ContextPanel
from app.widgets.conversation_list import ConversationList
from app.widgets.header_bar import HeaderBar
from app.widgets.health_panel import HealthPanel
from app.widgets.status_bar import PanelChanged, StatusBar
from app.widgets.user_message import UserMessage
from app.widgets.welcome import Welcome
from runtime.config import Config, LoadedConfig
from runtime.core.errors import AppError, InternalError, describe
from runtime.core.events import (
    AlertRaised,
    BackendStatus,
    BreakerStateChanged,
    Event,
    FallbackUsed,
    HealthChanged,
    JournalDamaged,
    JournalReplayed,
    RetryScheduled,
    StoreDegraded,
    StoreRecovered,
    TurnEvent,
    UserSaved,
)
from runtime.core.messages import ChatMessage
from runtime.host.facade import Attachment, AttachmentRefused, resolve_attachments

if TYPE_CHECKING:
    from runtime.host.facade import Conversation, RuntimeFacade, SearchHit

log = logging.getLogger(__name__)

#: Imported in a thread before the runtime starts, so the event loop never stalls on them.
HEAVY_MODULES = (
    "openai",
    "httpx",
    "redis.asyncio",
    "numpy",
    "pyarrow",
    "lancedb",
    "tiktoken",
    "runtime.host.runtime",
    "runtime.agent",
    "runtime.llm",
    "runtime.memory",
    "runtime.context",
    "runtime.state.conversations",
)

#: Short enough for the composer at 64 columns (the narrowest chat column the layout keeps).
PLACEHOLDER = "Message Holdfast · Enter sends · /help"

#: Seconds the search box waits for the next keystroke before searching message text.
SEARCH_SETTLE = 0.15
#: Older pages loaded at most to bring a found message on screen.
MAX_PAGES_TO_FIND = 40

#: Seconds a streaming turn gets, at exit, to save its partial reply.
TURN_SAVE_TIMEOUT = 1.0
#: Seconds after the exit began when the watchdog ends the process once data is safe, and when
#: it ends it in any case (a hang-up can leave the terminal writer blocked for good).
EXIT_DEADLINE = 1.5
HARD_DEADLINE = 1.9

#: Builds the (unstarted) runtime from the configuration, in the boot worker.
RuntimeFactory = Callable[[Config], "RuntimeFacade"]
W = TypeVar("W", bound=Widget)


@dataclass
class QueuedMessage:
    """A message typed while a turn was running or before start-up finished."""

    text: str
    #: The conversation it was typed in; None before the first conversation was open.
    conversation_id: str | None
    #: Its bubble in the chat log (replaced when the conversation is shown again).
    bubble: UserMessage
    #: Files its ``@path`` mentions named (read when it was sent).
    attachments: tuple[Attachment, ...] = ()


@dataclass
class RuntimeEvent(Message):
    """A runtime event (breaker, health, backend, store) delivered on the UI thread."""

    event: Event


class ChatScreen(Screen[None]):
    """The main screen. Typing goes to the composer from the first frame: Textual's auto focus
    would pick the first focusable widget (the sidebar's search box) until ``on_mount``'s focus
    lands, and a message typed at launch went into the search box instead of the chat."""

    AUTO_FOCUS = "#composer"


class HoldfastApp(App[int]):
    """The chat: conversations sidebar, chat log and composer, live Breakers/Health/Context panels.

    ``runtime`` is a runtime facade to use (the app then does not stop it); otherwise
    ``runtime_factory`` (default: a ``Runtime`` for this process's TUI session) builds one at boot.
    ``clock`` (monotonic seconds) times the panels' countdowns and the launch timings; ``boot=False``
    leaves the runtime unstarted (snapshot tests feed events by hand); ``typed_ahead`` are lines
    typed before the app took the terminal, each sent as if typed into the composer. Implements
    :class:`app.surface.ChatSurface` for the command handlers and the turn view.
    """

    TITLE = "Holdfast"
    CSS_PATH = "holdfast.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("f2", "rename_conversation", "Rename"),
        Binding("f8", "delete_conversation", "Delete"),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar"),
        Binding("ctrl+r", "toggle_panels", "Panels"),
        Binding("ctrl+f", "search_conversations", "Search"),
        Binding("escape", "cancel_turn", "Cancel", show=False),
        # Not in the composer's way: it uses Up/Down for its input history (see app.widgets.block_nav).
        Binding("alt+up", "blocks(-1)", "Blocks", show=False),
        Binding("alt+down", "blocks(1)", "Blocks", show=False),
        Binding("ctrl+o", "pick_model", "Model", show=False),
    ]

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        runtime: RuntimeFacade | None = None,
        runtime_factory: RuntimeFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        boot: bool = True,
        typed_ahead: Sequence[str] = (),
    ) -> None:
        super().__init__()
        #: Lines typed before the app took the terminal (app.main.typed_ahead), each sent as if
        #: typed into the composer once it is mounted.
        self._typed_ahead = list(typed_ahead)
        #: False leaves the runtime unstarted (snapshot tests feed events by hand).
        self.boot = boot
        self._parts: dict[str, Widget] = {}
        self.loaded = loaded
        self.config = loaded.config
        self.rt: RuntimeFacade | None = runtime
        self._runtime_factory = runtime_factory
        self._owns_runtime = runtime is None
        self._clock = clock
        self.conversation_id: str | None = None
        self.handlers = CommandHandlers(self)
        #: /edit: the user message being edited; the next send branches before it (issue 17).
        self.editing = EditFlow(self)
        #: Other processes' messages, titles and turns, shown live (issue 19).
        self.live = LiveView(self)
        self._turn: Worker[None] | None = None
        #: Messages waiting for the running turn (or for start-up) to end, each bound to the
        #: conversation it was typed in (None: typed before the first conversation opened).
        self._queue: list[QueuedMessage] = []
        #: Sends take their place in the queue in the order they were submitted: each send
        #: awaits (reading @files in a thread) before it queues, so two quick ones could swap.
        self._send_order = asyncio.Lock()
        self._boot_error: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._ui_thread = threading.get_ident()
        self._oldest_seq: int | None = None
        self._view: TurnView | None = None
        self._permission_waiters: list[asyncio.Future[str]] = []
        #: Set when the runtime is started and the first conversation is open (tests await it).
        self.ready = asyncio.Event()
        #: Launch-to-first-frame and launch-to-ready times (seconds), for the benchmark.
        self.timings: dict[str, float] = {}
        self._launched = clock()
        #: The layout, theme and input history remembered across launches (data dir's ui-state.json).
        self.ui_state = ui_state.load(self.config.data_path)
        # The theme picked from the palette last time, else the configured one (a name this
        # Textual does not know is skipped).
        known = [t for t in (self.ui_state.theme, self.config.ui.theme) if t in self.available_themes]
        self.theme = known[0] if known else "textual-dark"
        #: The model turns use when a conversation has none of its own (known after boot).
        self.default_model = ""
        #: The open conversation's picked reply variants (see runtime.core.variants.choices_from).
        self.variant_choices: dict[str, tuple[str, str]] = {}
        #: The actions on a highlighted chat block (copy, retry, variants, details...).
        self.blocks = BlockActions(self)
        #: What the user wants shown beside the chat (shown when it fits; see app.layout).
        self.want_sidebar = self.config.ui.show_sidebar if self.ui_state.sidebar is None else self.ui_state.sidebar
        self.want_panels = self.config.ui.show_panels if self.ui_state.panels is None else self.ui_state.panels
        #: The shutdown begun by exit() (None while running); data_safe is set once it is done.
        self._exit_task: asyncio.Future[None] | None = None
        #: The runtime stopping in the background of a real exit (see _shut_down).
        self._stopping: asyncio.Future[None] | None = None
        self.data_safe = threading.Event()
        #: True in the real process (app.main): a watchdog ends it if the exit hangs. Never in
        #: tests, where os._exit would end the test run.
        self.exit_watchdog = False
        #: Whose input history the composer recalls (known once the runtime is built).
        self._history_user: str | None = None
        #: Opened on demand over the chat on a narrow terminal (not remembered).
        self.overlay_sidebar = False
        self.overlay_panels = False

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield StatusBar(id="statusbar")
        with Horizontal(id="body"):
            yield ConversationList(id="sidebar")
            with Vertical(id="main"):
                chat = ChatLog(id="chat", max_rendered=self.config.ui.max_rendered_messages)
                yield chat
                yield BackendLines(id="backend-lines")
                yield Composer(id="composer", placeholder=PLACEHOLDER)
                nav = BlockNav(chat, id="block-nav")
                nav.display = False
                yield nav
            with VerticalScroll(id="panels"):
                yield BreakersPanel(id="breakers", clock=self._clock)
                yield HealthPanel(id="health")
                yield ContextPanel(id="context")
        yield Footer()

    def _part(self, selector: str, kind: type[W]) -> W:
        """A widget of the main screen, found once: a modal on top must not hide it."""
        found = self._parts.get(selector)
        if found is None:
            found = self._parts[selector] = self.screen_stack[0].query_one(selector, kind)
        return found  # type: ignore[return-value]

    @property
    def chat_log(self) -> ChatLog:
        return self._part("#chat", ChatLog)

    @property
    def composer(self) -> Composer:
        return self._part("#composer", Composer)

    @property
    def block_nav(self) -> BlockNav:
        """The highlighted-block line shown in the composer's place while navigating the chat."""
        return self._part("#block-nav", BlockNav)

    @property
    def header(self) -> HeaderBar:
        return self._part("#header", HeaderBar)

    @property
    def backend_lines(self) -> BackendLines:
        """One sticky line per degraded backend, above the composer."""
        return self._part("#backend-lines", BackendLines)

    @property
    def status_bar(self) -> StatusBar:
        return self._part("#statusbar", StatusBar)

    @property
    def panels(self) -> VerticalScroll:
        return self._part("#panels", VerticalScroll)

    @property
    def sidebar(self) -> ConversationList:
        return self._part("#sidebar", ConversationList)

    @property
    def breakers_panel(self) -> BreakersPanel:
        return self._part("#breakers", BreakersPanel)

    @property
    def health_panel(self) -> HealthPanel:
        return self._part("#health", HealthPanel)

    @property
    def context_panel(self) -> ContextPanel:
        return self._part("#context", ContextPanel)

    @property
    def runtime(self) -> RuntimeFacade:
        """The runtime facade once boot has built it (InternalError before: callers run after boot)."""
        if self.rt is None:
            raise InternalError("the runtime is still starting")
        return self.rt

    def get_default_screen(self) -> Screen[None]:
        return ChatScreen(id="_default")

    # ------------------------------------------------------------ startup and shutdown

    def on_mount(self) -> None:
        install_exit_signals(self)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.apply_layout()
        self.composer.focus()
        llm = self.config.llm
        self.header.model = llm.effective_model or "(endpoint default)"
        self.header.demo = llm.preset == "demo" and not llm.base_url
        self.header.endpoint = llm.effective_base_url or ("demo server (starting…)" if self.header.demo else "")
        # The first frame already says what this is; the first conversation replaces it.
        self.chat_log.mount(self._welcome())
        for text in self._typed_ahead:
            self.composer.recall.add(text)
            self.composer.post_message(Composer.Submitted(self.composer, text))
        self._typed_ahead.clear()
        self.call_after_refresh(self._first_frame)

    def _welcome(self) -> Welcome:
        return Welcome(
            model=self.header.model,
            endpoint=self.header.endpoint,
            demo=self.header.demo,
            compact=welcome_compact(self.size.height),
        )

    def _first_frame(self) -> None:
        self.timings.setdefault("first_frame", self._clock() - self._launched)
        # Only now: the import thread would otherwise compete with the first paint for the GIL.
        if self.boot:
            self.run_worker(self._boot_or_explain(), name="boot", group="boot", exit_on_error=False)

    async def _boot_or_explain(self) -> None:
        """Boot; if that fails, say so and give queued messages back rather than hold them forever."""
        try:
            await self._boot()
        except Exception as exc:  # shown to the user, never a crash
            log.exception("start-up failed")
            self._boot_error = describe(exc)
            await self.chat_log.notice(f"Holdfast could not start: {self._boot_error}", "degraded")
            self._return_queued_to_composer()

    def _return_queued_to_composer(self) -> None:
        if not self._queue:
            return
        texts = [queued.text for queued in self._queue]
        for queued in self._queue:
            queued.bubble.remove()
        self._queue.clear()
        self.composer.put_text("\n\n".join([*texts, self.composer.text] if self.composer.text else texts))
        self.notify("Your unsent messages are back in the composer.", severity="warning", markup=False)

    async def _boot(self) -> None:
        health = self.health_panel
        health.set_row("redis", status="starting", detail="loading libraries…")
        await asyncio.to_thread(_import_heavy)
        if self.rt is None:
            factory = self._runtime_factory or _default_factory
            self.rt = factory(self.config)
        rt = self.rt
        self._load_input_history(rt.user_id)
        self._unsubscribe = rt.subscribe(self._on_bus_event)
        rt.set_health_interval(self.config.ui.health_interval)
        health.set_row("redis", detail="starting…")
        health.set_row("llm", detail="starting…")
        if not rt.started:
            await rt.start()
        self.header.endpoint = rt.llm_url or self.header.endpoint
        with contextlib.suppress(AppError):
            self.header.model = await asyncio.wait_for(rt.current_model(), 5)
        self.default_model = self.header.model
        self._show_plugins()
        self.refresh_breakers()
        self.refresh_backend_pids()
        if not rt.memory_enabled:
            health.set_row("memory", status="unknown", detail="disabled in config")
            health.set_row("embeddings", status="unknown", detail="disabled in config")
        self.run_worker(self.check_health_now(), group="health", exit_on_error=False)
        # Latencies and states stay live between status changes: the monitor's last round,
        # read from memory every interval (no backend call from the UI).
        self.set_interval(self.config.ui.health_interval, self._show_health_snapshot)
        await self._open_first_conversation()
        self.live.start()
        self.timings.setdefault("ready", self._clock() - self._launched)
        self.ready.set()
        await self._drain_queue()

    def _show_plugins(self) -> None:
        errors = dict(self.runtime.plugin_errors)
        count = len(self.runtime.list_tools())
        if errors:
            self.health_panel.set_row(
                "plugins", status="degraded", detail=f"{count} tools; failed: {', '.join(sorted(errors))}"
            )
            for name, error in errors.items():
                self.notify(f"plugin {name} failed to load: {error}", severity="warning", markup=False)
        else:
            self.health_panel.set_row("plugins", status="healthy", detail=f"{count} tools")

    async def _open_first_conversation(self) -> None:
        """Reopen the conversation the user was last in (in any process), else the newest one,
        else start a new one."""
        rt = self.runtime
        try:
            conversations = await rt.list_conversations()
        except AppError as exc:
            await self.chat_log.notice(f"could not list conversations: {describe(exc)}", "degraded")
            conversations = []
        self.sidebar.show(conversations)
        self._load_totals(conversations)
        last = await rt.last_conversation() if conversations else None
        if last is not None and any(c.id == last for c in conversations):
            await self.open_conversation(last)
        elif conversations:
            newest = max(conversations, key=lambda c: c.updated_at)
            await self.open_conversation(newest.id)
        else:
            await self.start_new_conversation()

    def exit(self, result: int | None = None, return_code: int = 0, message: RenderableType | None = None) -> None:
        """End the app (Ctrl+Q, a signal, a hang-up): the shutdown (the streaming reply's partial
        text saved, the runtime stopped) starts now, beside Textual's own teardown, and a
        watchdog thread ends the process if anything hangs (see :func:`start_watchdog`)."""
        if self._exit_task is None:
            self.data_safe = threading.Event()
            if self.exit_watchdog:
                start_watchdog(self.data_safe, return_code)
            self._exit_task = asyncio.ensure_future(self._shut_down())
        super().exit(result, return_code, message)

    async def _shut_down(self) -> None:
        """Save what the user would lose, then stop the runtime; sets :attr:`data_safe`. Bounded:
        the turn gets :data:`TURN_SAVE_TIMEOUT` s to save its partial reply. In the real process
        (:attr:`exit_watchdog`) the data is safe as soon as it is saved (a conversation write
        Redis did not take is in the journal on disk): the runtime's stop then runs in the
        background of the exit, for as long as Textual's teardown lasts, and whatever is left of
        it (closing clients, deleting the session key, stopping the embedded servers) the process
        exit, the kernel's death signal and the data dir's watchdog finish. A test process
        outlives the app, so there the runtime is stopped whole before :attr:`data_safe`."""
        try:
            for waiter in self._permission_waiters:
                if not waiter.done():
                    waiter.set_result("deny")
            # A streaming turn must end (and save its partial reply) before the runtime closes.
            if self._turn is not None and self.turn_running:
                self._turn.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._turn.wait()), TURN_SAVE_TIMEOUT)
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if self.rt is not None and self._owns_runtime:
                if self.exit_watchdog:
                    self.data_safe.set()
                    self._stopping = asyncio.ensure_future(self.rt.stop())
                    self._stopping.add_done_callback(_retrieve)
                else:
                    with contextlib.suppress(Exception):
                        await self.rt.stop()
        finally:
            self.data_safe.set()

    async def on_unmount(self) -> None:
        if self._exit_task is None:  # unmounted without exit() (a test's run_test ending)
            self.data_safe = threading.Event()
            self._exit_task = asyncio.ensure_future(self._shut_down())
        with contextlib.suppress(Exception):
            await asyncio.shield(self._exit_task)

    # ------------------------------------------------------------ runtime events

    def _on_bus_event(self, event: Event) -> None:
        if isinstance(event, TurnEvent):
            return  # turn events are consumed from the turn's own iterator
        if threading.get_ident() == self._ui_thread:
            self.post_message(RuntimeEvent(event))
        else:
            self.call_from_thread(self.post_message, RuntimeEvent(event))

    def on_runtime_event(self, message: RuntimeEvent) -> None:
        if self._closing or self._closed or not self._parts:
            return
        event = message.event
        lines = self.backend_lines
        if isinstance(event, BreakerStateChanged):
            self.refresh_breakers()
            # One line per backend, rewritten in place: no toast per trip or probe.
            if event.new_state == "closed" and event.old_state in ("open", "half_open"):
                if event.reason == "reset":
                    lines.clear(event.name)
                else:
                    lines.set(event.name, f"{event.name} recovered: breaker closed ({event.reason})", "ok")
            elif event.new_state == "open":
                lines.set(event.name, f"{event.name} breaker OPEN: {event.reason}", "down")
            elif event.new_state == "half_open":
                lines.set(event.name, f"{event.name} breaker HALF-OPEN: probing", "healing")
        elif isinstance(event, HealthChanged):
            if event.name != "overall":
                self.health_panel.set_row(
                    _health_row(event.name),
                    status=event.new_status,
                    detail=event.detail or event.new_status,
                    latency_ms=event.latency_ms,
                )
                self.refresh_backend_pids()
        elif isinstance(event, BackendStatus):
            status = {"running": "healthy", "starting": "starting", "stopped": "stopped"}.get(event.status, "unhealthy")
            self.health_panel.set_row(
                event.name, status=status, detail=event.detail or event.status, pid=event.pid, keep_pid=False
            )
        elif isinstance(event, StoreDegraded):
            detail = f"journaling locally ({plural(event.pending_writes, 'write')} pending): {event.reason}"
            self.health_panel.set_row("redis", status="unhealthy", detail=detail)
            lines.set("store", f"Redis down: {detail}", "down")
        elif isinstance(event, JournalDamaged):
            # Told once, by the process that moved the records to quarantine (issue 15).
            self.notify(event.message, title="Local journal damaged", severity="warning", timeout=30, markup=False)
        elif isinstance(event, JournalReplayed):
            if event.remaining:
                lines.set(
                    "store",
                    f"Redis: journal replaying, {plural(event.replayed, 'write')} done, {event.remaining} waiting",
                    "healing",
                )
        elif isinstance(event, StoreRecovered):
            self.health_panel.set_row("redis", status="healthy", detail="back: journal empty")
            self.refresh_backend_pids()
            lines.set("store", f"Redis is back after {event.degraded_seconds:.0f}s; everything is saved", "ok")
            self.run_worker(self.reload_sidebar(), group="sidebar", exit_on_error=False)
        elif isinstance(event, FallbackUsed):
            self.refresh_breakers()
        elif isinstance(event, RetryScheduled) and self._view is not None and event.service == "llm":
            self._view.retrying(event)
        elif isinstance(event, AlertRaised):
            show_alert(self, event, lines)  # one per key per window; breaker alerts annotate their line

    def refresh_breakers(self) -> None:
        """Redraw the Breakers panel from the runtime's in-memory breaker snapshots."""
        if self.rt is not None:
            self.breakers_panel.show(self.rt.breaker_snapshots())

    def refresh_backend_pids(self) -> None:
        """Show the pid of each embedded backend (a local process table read, not a backend call)."""
        if self.rt is None:
            return
        for name, backend in self.rt.backends().items():
            row = self.health_panel.rows.get(name)
            self.health_panel.set_row(name, pid=backend.pid, keep_pid=False)
            if not backend.running and row is not None and row.status in ("healthy", "starting"):
                self.health_panel.set_row(name, status="stopped", detail="process not running")

    async def check_health_now(self) -> None:
        """Run every health check now and show the report in the Health panel."""
        if self.rt is None:
            return
        report = await self.rt.check_health()
        self.health_panel.show_report(report)
        self.refresh_backend_pids()

    def _show_health_snapshot(self) -> None:
        report = self.rt.health_snapshot() if self.rt is not None else None
        if report is not None and self._parts:
            self.health_panel.show_report(report)
            self.refresh_backend_pids()
            self.refresh_breakers()

    def schedule_recovery_probe(self, service: str) -> None:
        """After a backend restarts, let one call through when its breaker allows a probe, so the
        panel goes half-open then closed without waiting for the user's next message."""
        if service != "llm" or self.rt is None or not self.rt.started:
            return
        snap = self.rt.breaker_snapshot("llm")
        if snap is None or snap.state == "closed":
            return
        delay = (snap.seconds_until_half_open or 0.0) + 0.05
        self.set_timer(delay, lambda: self.run_worker(self._probe_llm(), group="probe", exit_on_error=False))

    async def _probe_llm(self) -> None:
        await self.runtime.probe_llm()
        self.refresh_breakers()

    # ------------------------------------------------------------ conversations

    async def start_new_conversation(self) -> None:
        """Show a new, empty conversation (created by its first turn, titled from its first message)."""
        await self._show_conversation(self.runtime.new_conversation_id(), [], title="New conversation")

    async def open_conversation(self, conversation_id: str) -> None:
        """Show a stored conversation: its title and its newest messages."""
        rt = self.runtime
        title = self.sidebar.title_of(conversation_id)
        info: Conversation | None = None
        model, choices = "", {}
        try:
            info = await rt.get_conversation(conversation_id)
            title, model, choices = info.title, info.model, dict(info.variant_choices)
        except AppError as exc:
            log.info("conversation info unavailable: %s", describe(exc))
        messages = await rt.read_messages(conversation_id, self.config.ui.max_rendered_messages)
        await self._show_conversation(conversation_id, messages, title=title, model=model, choices=choices)
        if info is not None and info.parent_id:  # a branch (issue 17): where it leaves its parent
            await mark_branch_point(self.chat_log, messages, info, self.sidebar.title_of(info.parent_id))

    async def _show_conversation(
        self,
        conversation_id: str,
        messages: Sequence[ChatMessage],
        *,
        title: str,
        model: str = "",
        choices: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        if conversation_id != self.conversation_id:
            self.editing.cancel()  # an edit belongs to the conversation it was started in
            self.leave_blocks()
        else:  # redrawn in place (a variant picked, a summary): navigation goes on from a new highlight
            self.block_nav.stop()
        self.conversation_id = conversation_id
        self.runtime.set_active_conversation(conversation_id)
        self.header.title_text = title
        # The conversation's own model (``/model``, Ctrl+O), else the endpoint's default.
        self.header.model = model or self.default_model or self.header.model
        self.variant_choices = dict(choices or {})
        self.sidebar.current_id = conversation_id
        self.sidebar.show(self.sidebar.conversations)
        self.context_panel.show_conversation(conversation_id)
        log_ = self.chat_log
        if self._view is not None:  # its widgets go with the log's; reattach() redraws them below
            self._view.detach()
        await log_.clear()
        await log_.add(*render_history(messages, self.variant_choices))
        if not messages and not self._queued_for(conversation_id):
            await log_.add(self._welcome())
        # A turn of this conversation still streaming, and messages waiting behind it, belong
        # below its history again (the store has neither yet).
        if self._view is not None and self._view.conversation_id == conversation_id:
            await self._view.reattach()
        for queued in self._queued_for(conversation_id):
            queued.conversation_id = conversation_id
            queued.bubble = UserMessage(queued.text, queued=True)
            await log_.add(queued.bubble)
        self._oldest_seq = messages[0].seq if messages else None
        log_.has_older = bool(messages) and messages[0].seq not in (None, 0)
        log_.scroll_end(animate=False)
        log_.anchor()
        self.live.shown(conversation_id, messages)

    async def edit_message(self, message: str | int | None = None) -> bool:
        """Edit one of the open conversation's user messages (issue 17): its text goes into the
        composer, and sending it creates a branch sharing the history before it, stores the
        edited text there, runs a new reply and opens the branch (see :mod:`app.edit_flow`).

        ``message`` is the message id (str, e.g. of a highlighted block), its seq (int), or None
        for the last user message. Returns False after showing a one-line hint when it cannot be
        edited (not a user message, not found, the runtime not started); never raises AppError.
        """
        try:
            await self.editing.start(message)
        except EditError as exc:
            await self.chat_log.notice(str(exc), "hint")
            return False
        except AppError as exc:
            await self.chat_log.notice(f"/edit failed: {describe(exc)}", "error")
            return False
        return True

    def cancel_edit(self) -> bool:
        """Drop a pending /edit (the next send goes to the end of the conversation again)."""
        return self.editing.cancel()

    def _queued_for(self, conversation_id: str) -> list[QueuedMessage]:
        """Queued messages of ``conversation_id`` (and those typed before any conversation opened)."""
        return [q for q in self._queue if q.conversation_id in (conversation_id, None)]

    async def reload_sidebar(self) -> None:
        """Re-list the conversations (a failure is logged; the old list stays)."""
        if self.rt is None or not self.rt.started:
            return
        try:
            conversations = await self.rt.list_conversations()
        except AppError as exc:
            log.info("conversation list unavailable: %s", describe(exc))
            return
        self.sidebar.show(conversations, self.conversation_id)
        self._load_totals(conversations)
        title = self.sidebar.title_of(self.conversation_id or "")
        if title:
            self.header.title_text = title

    def _load_totals(self, conversations: list[Conversation]) -> None:
        """Sum each listed conversation's reply figures in the background, then show them in the
        sidebar (only conversations changed since the last time are read again)."""
        if not conversations:
            return

        async def load() -> None:
            self.sidebar.show_totals(await self.runtime.conversation_totals(conversations))

        # The function, not a coroutine: a worker cancelled before it starts (the app quitting,
        # a newer list) then leaves no never-awaited coroutine behind.
        self.run_worker(load, group="totals", exclusive=True, exit_on_error=False)

    def on_conversation_list_selected(self, message: ConversationList.Selected) -> None:
        # Back to the chat: an overlay sidebar closes, and what is typed next is a message (it
        # went into the list: letters were lost and Enter reopened the highlighted row).
        if self.overlay_sidebar:
            self.overlay_sidebar = False
            self.apply_layout()
        self.composer.focus()
        if message.conversation_id != self.conversation_id and self.rt is not None:
            self.run_worker(
                self.open_conversation(message.conversation_id), group="conv", exclusive=True, exit_on_error=False
            )

    async def on_chat_log_load_older(self, message: ChatLog.LoadOlder) -> None:
        if self.rt is None or self.conversation_id is None or self._oldest_seq is None:
            return
        self.run_worker(self._load_older(self.conversation_id, self._oldest_seq), group="older", exit_on_error=False)

    async def _load_older(self, conversation_id: str, before: int) -> None:
        page = await self.runtime.read_messages(conversation_id, 50, before_seq=before)
        if conversation_id != self.conversation_id:
            return
        self._oldest_seq = page[0].seq if page else None
        self.chat_log.has_older = bool(page) and page[0].seq not in (None, 0)
        await self.chat_log.prepend(render_history(page, self.variant_choices))

    def action_new_conversation(self) -> None:
        if self.rt is not None:
            self.run_worker(self.start_new_conversation(), group="conv", exit_on_error=False)

    # ------------------------------------------------------------ responsive layout

    def on_resize(self, event: events.Resize) -> None:
        # Textual runs this handler before App._on_resize stores the new size: self.size is still
        # the old one here (the layout lagged one resize behind: 20 chat columns at 80 wide).
        self.apply_layout(event.size.width)
        if self.screen_stack:
            for card in self.chat_log.query(Welcome):
                card.compact = welcome_compact(event.size.height)

    def apply_layout(self, width: int | None = None) -> None:
        """Show the sidebar, the panels or the status bar for a terminal ``width`` columns wide
        (default: the current width; see app.layout). Focus left on a part that is now hidden
        goes back to the composer, so keys are never typed into nothing."""
        if not self._parts and not self.screen_stack:
            return
        width = self.size.width if width is None else width
        layout = plan(width, want_sidebar=self.want_sidebar, want_panels=self.want_panels)
        sidebar, panels = self.sidebar, self.panels
        if layout.sidebar:
            self.overlay_sidebar = False
        if layout.panels:
            self.overlay_panels = False
        sidebar.display = layout.sidebar or self.overlay_sidebar
        sidebar.set_class(self.overlay_sidebar, "-overlay")
        panels.display = layout.panels or self.overlay_panels
        panels.set_class(self.overlay_panels, "-overlay")
        self.status_bar.display = layout.status_bar
        # Every key in the footer fits at 80 columns only without its spacing ("^f Se▏^p palette").
        self.screen_stack[0].query_one(Footer).compact = width < WIDE
        focused = self.screen_stack[0].focused
        if focused is not None and any(
            not part.display and (focused is part or part in focused.ancestors) for part in (sidebar, panels)
        ):
            self.composer.focus()

    def _remember_theme(self, theme: object) -> None:
        """A theme was picked (the palette's Theme command): remember it for the next launch."""
        if self.ui_state.theme != self.theme:
            self.ui_state.theme = self.theme
            ui_state.save(self.config.data_path, self.ui_state)

    def _remember_layout(self) -> None:
        self.ui_state.sidebar = self.want_sidebar
        self.ui_state.panels = self.want_panels
        ui_state.save(self.config.data_path, self.ui_state)

    def action_toggle_sidebar(self) -> None:
        """Ctrl+B: show or hide the sidebar; remembered when it fits beside the chat, else it opens
        over the chat until pressed again."""
        panels_inline = self.panels.display and not self.overlay_panels
        if sidebar_can_be_inline(self.size.width, panels_inline):
            self.want_sidebar = not (self.sidebar.display and not self.overlay_sidebar)
            self.overlay_sidebar = False
            self._remember_layout()
        else:
            self.overlay_sidebar = not self.overlay_sidebar
            if self.overlay_sidebar:
                self.overlay_panels = False
        self.apply_layout()
        if self.overlay_sidebar:
            # Opened over the chat: Up/Down and Enter pick a conversation at once.
            self.sidebar.options.focus()

    def action_toggle_panels(self) -> None:
        """Ctrl+R (or a click on the status bar): show or hide the side panels; remembered when they
        fit beside the chat, else they open over the chat until pressed again."""
        if panels_can_be_inline(self.size.width):
            self.want_panels = not self.panels.display
            self.overlay_panels = False
            self._remember_layout()
        else:
            self.overlay_panels = not self.overlay_panels
            if self.overlay_panels:
                self.overlay_sidebar = False
        self.apply_layout()

    def on_status_bar_open_panels(self, message: StatusBar.OpenPanels) -> None:
        self.action_toggle_panels()

    def on_panel_changed(self, message: PanelChanged) -> None:
        if not self._parts and not self.screen_stack:
            return
        self.status_bar.show(
            {
                name: self.breakers_panel.rows[name].state
                for name in sorted(self.breakers_panel.rows, key=breaker_order)
            },
            {name: row.status for name, row in self.health_panel.rows.items()},
            self.context_panel.budget_percent,
        )

    def action_search_conversations(self) -> None:
        """Ctrl+F: the sidebar's search box (titles and message text; Enter opens the best match)."""
        if not self.sidebar.display:
            self.action_toggle_sidebar()
        self.query_one("#conv-search").focus()

    def on_conversation_list_search_changed(self, message: ConversationList.SearchChanged) -> None:
        if self.rt is not None and message.query:
            self.run_worker(self._search(message.query), group="search", exclusive=True, exit_on_error=False)

    async def _search(self, query: str, *, settle: float = SEARCH_SETTLE) -> list[SearchHit]:
        """Search titles and message text for ``query`` after ``settle`` seconds without a newer
        keystroke (this worker is replaced by the next one), and show the hits in the sidebar."""
        if settle:
            await asyncio.sleep(settle)
        try:
            hits = await self.runtime.search_conversations(query)
        except AppError as exc:
            self.notify(f"search failed: {describe(exc)}", severity="warning", markup=False)
            return []
        self.sidebar.show_hits(query, hits)
        return hits

    def on_conversation_list_search_submitted(self, message: ConversationList.SearchSubmitted) -> None:
        if self.rt is not None:
            self.run_worker(self._open_best(message.query), group="conv", exclusive=True, exit_on_error=False)

    async def _open_best(self, query: str) -> None:
        """Enter in the search box: open the best match for ``query`` scrolled to its message."""
        sidebar = self.sidebar
        hits = sidebar.hits if sidebar.hits_query == query else await self._search(query, settle=0)
        if not hits:
            self.notify(f"nothing matches {query!r}", severity="warning", markup=False)
            return
        best = hits[0]
        sidebar.clear_search()
        if self.overlay_sidebar:
            self.overlay_sidebar = False
            self.apply_layout()
        self.composer.focus()
        await self.open_conversation(best.conversation_id)
        if best.message_id is not None:
            await self.show_message(best.message_id)

    async def show_message(self, message_id: str) -> bool:
        """Scroll the open conversation to the message ``message_id`` (loading older pages until it
        is on screen) and highlight it; False if it is not in the conversation."""
        log_ = self.chat_log
        for _ in range(MAX_PAGES_TO_FIND):
            found = [
                w for w in log_.query("UserMessage, AssistantMessage") if getattr(w, "message_id", None) == message_id
            ]
            if found:
                target = found[0]
                for old in log_.query(".-found"):
                    old.remove_class("-found")
                target.add_class("-found")
                # Unanchored, not just released: a released anchor comes back whenever the view is
                # at the bottom, which it is while a long reply's Markdown is still being laid
                # out, and the view then followed the tail to the end of the conversation.
                log_.anchor(False)
                log_.scroll_to_widget(target, animate=False, top=True, immediate=True)
                self.call_after_refresh(log_.scroll_to_widget, target, animate=False, top=True, immediate=True)
                return True
            if self.conversation_id is None or self._oldest_seq is None or not log_.has_older:
                return False
            await self._load_older(self.conversation_id, self._oldest_seq)
        return False

    @work(group="conv", exit_on_error=False)
    async def action_rename_conversation(self) -> None:
        if self.rt is None or self.conversation_id is None:
            return
        title = await self.push_screen_wait(TextPromptScreen("Rename this conversation:", self.header.title_text))
        if title:
            await self.runtime.rename_conversation(self.conversation_id, title)
            self.header.title_text = title
            await self.reload_sidebar()

    @work(group="conv", exit_on_error=False)
    async def action_delete_conversation(self) -> None:
        if self.rt is None or self.conversation_id is None:
            return
        title = self.header.title_text or self.conversation_id
        if not await self.push_screen_wait(ConfirmScreen(f"Delete the conversation “{title}”? This cannot be undone.")):
            return
        await self.runtime.delete_conversation(self.conversation_id)
        await self.reload_sidebar()
        remaining = self.sidebar.conversations
        if remaining:
            await self.open_conversation(remaining[0].id)
        else:
            await self.start_new_conversation()

    # ------------------------------------------------------------ composer and turns

    def _load_input_history(self, user: str) -> None:
        """Give the composer ``user``'s remembered inputs (Up recalls them), before anything typed
        during start-up."""
        self._history_user = user
        recall = self.composer.recall
        stored = self.ui_state.history.get(user, [])
        typed = recall.items
        recall.items = [*stored, *typed][-recall.limit :]
        if typed:
            self._save_input_history()

    def _save_input_history(self) -> None:
        """Remember the composer's inputs for this user across launches (ui-state.json)."""
        if self._history_user is None:
            return
        self.ui_state.history[self._history_user] = list(self.composer.recall.items)
        ui_state.save(self.config.data_path, self.ui_state)

    def on_composer_submitted(self, message: Composer.Submitted) -> None:
        self._save_input_history()
        text = message.text
        if is_command(text):
            self.chat_log.anchor()  # what the command says goes at the bottom: show it
            try:
                invocation = parse(text)
            except CommandError as exc:
                self.run_worker(self.chat_log.notice(str(exc), "hint"), exit_on_error=False)
                return
            self.run_worker(self.handlers.run(invocation), group="command", exit_on_error=False)
            return
        if self.editing.claims():  # an edited earlier message: it starts a branch
            self.run_worker(self.editing.send(text), group="send", exit_on_error=False)
            return
        self.run_worker(self.send(text), group="send", exit_on_error=False)

    def on_composer_cancel_requested(self, message: Composer.CancelRequested) -> None:
        self.action_cancel_turn()

    def on_composer_scroll_chat(self, message: Composer.ScrollChat) -> None:
        """PageUp/PageDown/Home/End from the composer: scroll the chat (the bottom follows the
        tail again, as after sending)."""
        log_ = self.chat_log
        if message.where == "bottom":
            log_.anchor()
            return
        if message.where in ("page_up", "top"):
            log_.release_anchor()  # stop following the tail while reading back
        if message.where == "page_up":
            log_.scroll_page_up(animate=False)
        elif message.where == "page_down":
            log_.scroll_page_down(animate=False)
        else:
            log_.scroll_home(animate=False, immediate=True)

    @property
    def turn_running(self) -> bool:
        return self._turn is not None and self._turn.state in (WorkerState.PENDING, WorkerState.RUNNING)

    async def send(self, text: str) -> None:
        """Show the user's text and start its turn, or queue it behind a running one."""
        if self._boot_error is not None:
            self.composer.put_text(text)
            self.notify(f"Not sent: Holdfast could not start ({self._boot_error}).", severity="error", markup=False)
            return
        async with self._send_order:  # FIFO: taken in the order the sends started
            try:  # @path mentions: read under the working directory, off the event loop
                found = await asyncio.to_thread(resolve_attachments, text, Path.cwd())
            except AttachmentRefused as exc:  # not sent: the text goes back to be edited
                if not self.composer.text:
                    self.composer.put_text(text)
                await self.chat_log.notice(f"Not sent: {exc.message}", "error")
                return
            for note in found.notices:
                await self.chat_log.notice(note, "hint")
            bubble = UserMessage(text, queued=True)
            await self.chat_log.add(bubble)
            self.chat_log.anchor()  # sending means "show me the answer": follow the tail again
            self._queue.append(
                QueuedMessage(text, self.conversation_id if self.ready.is_set() else None, bubble, found.attachments)
            )
        if not self.turn_running and self.ready.is_set():
            await self._drain_queue()

    async def _drain_queue(self) -> None:
        """Start the oldest queued message's turn, in the conversation it was typed in."""
        if self._queue and not self.turn_running:
            queued = self._queue.pop(0)
            await self.start_turn(
                queued.text,
                bubble=queued.bubble,
                conversation_id=queued.conversation_id or self.conversation_id,
                attachments=queued.attachments,
            )

    async def start_turn(
        self,
        text: str | None,
        *,
        retry: bool = False,
        bubble: UserMessage | None = None,
        conversation_id: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> None:
        """Run a turn for ``text`` (or resend the last message with ``retry``) in
        ``conversation_id`` (default: the open conversation); its events stay bound to it.
        ``attachments``: the files ``text`` mentions (``@path``), sent with it."""
        if self.turn_running:
            if retry:
                await self.chat_log.notice("a reply is still streaming: press Esc first", "hint")
            return
        target = conversation_id or self.conversation_id
        if target is None:
            return
        self._turn = self.run_worker(
            self._run_turn(target, text, retry, bubble, attachments), name="turn", group="turn", exit_on_error=False
        )

    def action_cancel_turn(self) -> None:
        """Esc: stop the streaming reply; with none streaming, close a sidebar or panels opened
        over the chat (back to the composer)."""
        if self.turn_running and self._turn is not None:
            self._turn.cancel()
        elif self.overlay_sidebar or self.overlay_panels:
            self.overlay_sidebar = self.overlay_panels = False
            self.apply_layout()

    async def _ask_permission(self, tool_name: str, arguments: Mapping[str, object]) -> str:
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._permission_waiters.append(waiter)

        def answered(result: str | None) -> None:
            if not waiter.done():
                waiter.set_result(result or "deny")

        screen = PermissionScreen(tool_name, arguments)
        self.push_screen(screen, answered)
        try:
            return await waiter
        finally:
            self._permission_waiters.remove(waiter)
            if self.screen is screen:
                screen.dismiss("deny")

    async def _run_turn(
        self,
        conversation_id: str,
        text: str | None,
        retry: bool,
        bubble: UserMessage | None,
        attachments: tuple[Attachment, ...] = (),
    ) -> None:
        try:  # a turn running in another process: wait for it, saying so (Esc gives the text back)
            await self.live.before_turn(conversation_id)
        except asyncio.CancelledError:
            self.live.not_sent(text, bubble)
            self.call_later(self._after_turn)
            raise
        view = self._view = TurnView(self, conversation_id)
        rt = self.runtime
        events = (
            rt.retry_turn(conversation_id, ask_permission=self._ask_permission)
            if retry
            else rt.run_turn(conversation_id, text or "", ask_permission=self._ask_permission, attachments=attachments)
        )
        try:
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    if isinstance(event, UserSaved) and bubble is not None:
                        bubble.mark_sent(event.message_id)
                    await view.handle(event)
        except asyncio.CancelledError:
            await asyncio.shield(view.cancelled())
            raise
        finally:
            self._view = None
            await view.stop_waiting()
            if bubble is not None:
                bubble.remove_class("-queued")
            self.call_later(self._after_turn)

    async def _after_turn(self) -> None:
        await self.reload_sidebar()
        self.refresh_breakers()
        await self._drain_queue()

    # ------------------------------------------------------------ errors in workers

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            text = describe(error) if isinstance(error, AppError) else f"{type(error).__name__}: {error}"
            log.error("worker %s failed: %s", event.worker.name, text, exc_info=error)
            self.notify(text, title=f"{event.worker.name or 'task'} failed", severity="error", markup=False)
            self.run_worker(
                self.chat_log.notice(f"{event.worker.name or 'task'} failed: {text}", "error"), exit_on_error=False
            )

    # ------------------------------------------------------------ chat blocks and the model picker

    def action_blocks(self, step: int) -> None:
        """Alt+Up / Alt+Down: highlight the newest (or oldest) block of the chat and act on it
        from the keyboard (see app.widgets.block_nav)."""
        nav = self.block_nav
        if not nav.start(step):
            self.notify("nothing in the chat to move through yet", markup=False)
            return
        nav.can_edit = callable(getattr(self, "edit_message", None))
        nav.update(nav.hint())
        self.composer.display = False
        nav.display = True
        nav.focus()

    def leave_blocks(self, typed: str = "") -> None:
        """End block navigation: the highlight goes, the composer comes back with focus (and
        ``typed``, the character that ended it)."""
        nav = self.block_nav
        was_on = nav.display
        nav.stop()
        nav.display = False
        self.composer.display = True
        if was_on:
            self.composer.focus()
        if typed:
            self.composer.insert(typed)

    def on_block_nav_left(self, message: BlockNav.Left) -> None:
        self.leave_blocks(message.typed)

    def on_block_nav_act(self, message: BlockNav.Act) -> None:
        self.run_worker(
            self.blocks.act(message.action, message.block, message.number), group="block", exit_on_error=False
        )

    def action_pick_model(self) -> None:
        """Ctrl+O: pick this conversation's model from the endpoint's list."""
        self.run_worker(self.pick_model(), group="model", exclusive=True, exit_on_error=False)

    async def pick_model(self) -> None:
        """List the endpoint's models (through the runtime's guarded client) in a filterable
        picker; the pick is stored with the conversation and shown in the header."""
        if self.rt is None or not self.rt.started:
            self.notify("the runtime is still starting; try again in a moment", markup=False)
            return
        try:
            models = await self.rt.list_models()
        except AppError as exc:
            await self.chat_log.notice(f"could not list the models: {describe(exc)}", "error")
            return
        if not models:
            await self.chat_log.notice("the endpoint lists no models; type /model NAME", "hint")
            return
        picked = await self.push_screen_wait(ModelPickerScreen(models, self.header.model))
        if picked:
            await self.use_model(picked)

    async def use_model(self, name: str) -> None:
        """Store ``name`` as the open conversation's model and show it in the header."""
        if self.conversation_id is None:
            return
        await self.runtime.set_conversation_model(self.conversation_id, name)
        self.header.model = name
        await self.chat_log.notice(f"model for this conversation: {name}")

    # ------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for spec in COMMANDS.values():
            takes_args = spec.min_args > 0 or spec.free_text or spec.name in ("chaos", "breakers")
            yield SystemCommand(spec.usage, spec.summary, self._palette_callback(spec.name, takes_args))
        yield SystemCommand("Model", "Pick this conversation's model from the endpoint's list", self.action_pick_model)
        yield from self.blocks.palette_commands()

    def _palette_callback(self, name: str, takes_args: bool) -> Callable[[], None]:
        def run() -> None:
            if takes_args:
                # Commands with arguments are pre-filled in the composer to be completed.
                self.composer.put_text(f"/{name} ")
                self.composer.focus()
            else:
                self.run_worker(self.handlers.run(parse(f"/{name}")), group="command", exit_on_error=False)

        return run


def _retrieve(task: asyncio.Task[None]) -> None:
    """Retrieve a background task's outcome so a failure is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def start_watchdog(data_safe: threading.Event, return_code: int) -> threading.Thread:
    """A daemon thread that ends the process (``os._exit``) if it is still alive
    :data:`EXIT_DEADLINE` s after the exit began and ``data_safe`` is set, or after
    :data:`HARD_DEADLINE` s in any case: a shutdown never hangs (a terminal that is gone can block
    Textual's writer thread forever). Output is flushed first, as far as it can be."""

    def watch() -> None:
        started = time.monotonic()
        data_safe.wait(HARD_DEADLINE)
        time.sleep(max(0.0, EXIT_DEADLINE - (time.monotonic() - started)))
        if not data_safe.is_set():
            data_safe.wait(max(0.0, HARD_DEADLINE - (time.monotonic() - started)))
            log.error("shutdown still not done after %.1f s: ending the process", HARD_DEADLINE)
        else:
            log.warning("exit still running %.1f s after it began: ending the process", EXIT_DEADLINE)
        logging.shutdown()
        os._exit(return_code)

    thread = threading.Thread(target=watch, name="exit-watchdog", daemon=True)
    thread.start()
    return thread


def _health_row(check: str) -> str:
    return "plugins" if check.startswith(("plugin", "tool")) else check


def _import_heavy() -> None:
    for name in HEAVY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional backend library missing: the runtime reports it
            log.warning("could not import %s: %s", name, exc)


def _default_factory(config: Config) -> RuntimeFacade:
    from runtime.host.runtime import Runtime

    return Runtime.from_config(config, face="tui")
