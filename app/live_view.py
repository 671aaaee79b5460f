"""Live updates in the TUI: what other terminals and replicas write shows up here at once.

The runtime tells every change to this user's conversations, from any process on the same Redis
(:meth:`runtime.host.facade.RuntimeFacade.watch_conversations`). :class:`LiveView` turns them
into what the user sees:

* **the open conversation**: a message appended by another process (``holdfast chat``, a second
  TUI, a ``holdfast serve`` replica) is read from the store, from just after the newest one shown,
  and appended as the same widgets a reload would draw. Nothing is shown twice: a message this
  process wrote (its own turn shows it; the runtime knows its ids) or whose id is on screen
  already is skipped, and a tool result fills in its call's block. Messages typed here and
  still queued stay below what arrives.
* **the sidebar**: each row's message count, title and order follow the changes; a conversation
  created elsewhere appears, one deleted elsewhere goes.
* **a turn running elsewhere** (another process holds the conversation's turn lock, or said it
  started a turn): a sticky "running elsewhere" line above the composer while it runs. A message
  sent meanwhile is not refused with a busy error: it waits below the other turn's messages,
  says so, and is sent the moment that turn ends (Esc gives it back to the composer instead).
* **Redis out**: nothing breaks; once the subscription is back (a ``resync`` change) the open
  conversation and the sidebar are read again, so what was missed meanwhile appears.

It depends on :class:`LiveSurface` (what it needs of the app), never on the app module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from textual.timer import Timer

from app.turn_view import render_history
from app.widgets.assistant_message import AssistantMessage
from app.widgets.chat_log import ChatLog
from app.widgets.notice import Notice
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from runtime.core.errors import AppError, describe
from runtime.core.messages import ChatMessage

if TYPE_CHECKING:
    from app.widgets.backend_lines import BackendLines
    from app.widgets.composer import Composer
    from app.widgets.conversation_list import ConversationList
    from app.widgets.header_bar import HeaderBar
    from runtime.config import Config
    from runtime.host.facade import ConversationChanged, RuntimeFacade

log = logging.getLogger(__name__)

#: The key of the sticky line above the composer, and what it says.
LINE = "elsewhere"
RUNNING_ELSEWHERE = (
    "running elsewhere: another terminal is writing a reply in this conversation (shown here when saved)"
)
#: The notice below a message that waits for the other terminal's turn.
WAITING = "running elsewhere: another terminal's reply in this conversation is still being written; your message is sent as soon as it ends (Esc: keep it unsent)"
NOT_SENT = "not sent: your message is back in the composer"
DELETED = "this conversation was deleted in another terminal; what is shown here is no longer stored"

#: Seconds between turn-lock checks while a message waits for a turn running elsewhere (the end
#: notice wakes the wait sooner; the check covers a lost notice and a holder that died).
WAIT_POLL = 0.25
#: Seconds between turn-lock checks while the "running elsewhere" line is shown.
LINE_POLL = 2.0


class LiveSurface(Protocol):
    """What :class:`LiveView` needs of the app (:class:`app.chat_app.HoldfastApp` implements it)."""

    #: The conversation on screen (None before the first one is open).
    conversation_id: str | None

    @property
    def config(self) -> Config: ...

    @property
    def rt(self) -> RuntimeFacade | None: ...

    @property
    def chat_log(self) -> ChatLog: ...

    @property
    def sidebar(self) -> ConversationList: ...

    @property
    def header(self) -> HeaderBar: ...

    @property
    def backend_lines(self) -> BackendLines: ...

    @property
    def composer(self) -> Composer: ...

    async def open_conversation(self, conversation_id: str) -> None: ...

    async def reload_sidebar(self) -> None: ...

    def run_worker(self, work: Awaitable[Any], *, name: str = "", group: str = "", exit_on_error: bool = True) -> Any:
        """Run ``work`` as a Textual worker (cancelled when the app exits)."""
        ...

    def set_interval(self, interval: float, callback: Callable[[], object]) -> Timer: ...


class LiveView:
    """Shows other processes' changes in one app (see the module docstring).

    Wired by the app: :meth:`start` once the runtime runs, :meth:`shown` whenever a conversation
    is put on screen, :meth:`before_turn` before each of its own turns (:meth:`not_sent` when
    that wait is cancelled).
    """

    def __init__(self, app: LiveSurface) -> None:
        self.app = app
        #: The conversation whose messages are tracked, and the newest seq shown of it (-1: none).
        self.conversation_id: str | None = None
        self.shown_seq = -1
        #: Conversations with a turn running in another process, as far as this terminal knows.
        self.elsewhere: set[str] = set()
        self._queue: asyncio.Queue[ConversationChanged] = asyncio.Queue()
        self._turn_changed = asyncio.Event()
        self._reading = asyncio.Lock()
        self._stop: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()

    # ------------------------------------------------------------ wiring

    def start(self) -> None:
        """Subscribe to this user's changes and start showing them (once the runtime runs)."""
        rt = self.app.rt
        if rt is None or self._stop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._stop = rt.watch_conversations(self._on_change)
        self.app.run_worker(self._consume(), name="live updates", group="live", exit_on_error=False)
        self.app.set_interval(LINE_POLL, self._recheck_line)

    def shown(self, conversation_id: str, messages: Sequence[ChatMessage]) -> None:
        """``conversation_id`` was put on screen with ``messages`` (its newest, oldest first)."""
        self.conversation_id = conversation_id
        self.shown_seq = max((m.seq for m in messages if m.seq is not None), default=-1)
        self._show_line()
        if self.app.rt is not None and self.app.rt.started:
            self.app.run_worker(self._check_lock(conversation_id), group="live-lock", exit_on_error=False)

    async def before_turn(self, conversation_id: str) -> None:
        """Run before this terminal's turn in ``conversation_id``: while another process runs a
        turn there, say so and wait (the other turn's messages keep appearing above the waiting
        message), then catch up. Cancelled (Esc) it raises CancelledError; see :meth:`not_sent`."""
        rt = self.app.rt
        if rt is not None and await rt.turn_running_elsewhere(conversation_id):
            notice = Notice(WAITING, "hint")
            if self.app.conversation_id == conversation_id:  # not in the log of another conversation
                await self.app.chat_log.add(notice, at_end=True)  # below the message it is about
            self.elsewhere.add(conversation_id)
            self._show_line()
            try:
                while await rt.turn_running_elsewhere(conversation_id):
                    self._turn_changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._turn_changed.wait(), WAIT_POLL)
            finally:
                self.elsewhere.discard(conversation_id)
                self._show_line()
                with contextlib.suppress(Exception):
                    await notice.remove()
            # Everything the other turn saved goes above this message before it is sent.
            await self.catch_up()

    def not_sent(self, text: str | None, bubble: UserMessage | None) -> None:
        """The wait for another terminal's turn was cancelled: the message goes back to the
        composer (before anything typed since) and its bubble goes away."""
        with contextlib.suppress(Exception):
            if bubble is not None:
                bubble.remove()
            if text:
                composer = self.app.composer
                composer.put_text(f"{text}\n\n{composer.text}" if composer.text else text)
            self.app.run_worker(self.app.chat_log.notice(NOT_SENT, "hint"), exit_on_error=False)

    # ------------------------------------------------------------ changes as they come

    def _on_change(self, change: ConversationChanged) -> None:
        if threading.get_ident() == self._thread or self._loop is None:
            self._queue.put_nowait(change)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, change)

    async def _consume(self) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                try:
                    await self._apply(batch)
                except AppError as exc:  # a read failed (Redis just went out): the next resync re-reads
                    log.info("live update not shown: %s", describe(exc))
                except Exception:  # a bug here must not end live updates for the rest of the session
                    log.exception("live update not shown")
        finally:
            if self._stop is not None:
                self._stop()
                self._stop = None

    async def _apply(self, batch: list[ConversationChanged]) -> None:
        app = self.app
        sidebar = app.sidebar
        relist = read = False
        for change in batch:
            conv = change.conversation_id
            if change.kind == "resync":
                relist = read = True
            elif change.kind == "message":
                if not sidebar.update(conv, message_count=change.message_count, updated_at=change.at or None):
                    relist = True
                seq = change.seq if change.seq is not None else -1
                if conv != self.conversation_id or seq <= self.shown_seq:
                    continue
                if not change.elsewhere and seq == self.shown_seq + 1:
                    self.shown_seq = seq  # this terminal's own message, next in line: on screen already
                else:
                    read = True
            elif change.kind == "title" and change.title is not None:
                if not sidebar.update(conv, title=change.title, updated_at=change.at or None):
                    relist = True
                if conv == app.conversation_id:
                    app.header.title_text = change.title
            elif change.kind == "deleted":
                sidebar.remove(conv)
                if conv == app.conversation_id and self.shown_seq >= 0:
                    await app.chat_log.notice(DELETED, "degraded")
            elif change.kind == "turn" and change.elsewhere:
                if change.running:
                    self.elsewhere.add(conv)
                else:
                    self.elsewhere.discard(conv)
                self._turn_changed.set()
                self._show_line()
        if relist:
            await app.reload_sidebar()
        if read:
            await self.catch_up()

    async def catch_up(self) -> None:
        """Append the open conversation's messages newer than the newest shown, but this
        process's own. More than a screenful missed: the conversation is shown afresh."""
        async with self._reading:
            app, conv = self.app, self.conversation_id
            rt = app.rt
            if rt is None or conv is None or conv != app.conversation_id:
                return
            if rt.store_status().degraded:
                return  # reads come from this process's cache, which lacks the others' writes; resync follows
            after = self.shown_seq
            newest = await rt.read_messages(conv, app.config.ui.max_rendered_messages)
            if conv != app.conversation_id or conv != self.conversation_id:
                return  # the user switched meanwhile: that conversation was read whole
            fresh = [m for m in newest if m.seq is not None and m.seq > after]
            if not fresh:
                return
            if after >= 0 and fresh[0].seq is not None and fresh[0].seq > after + 1:
                await app.open_conversation(conv)  # a gap: more than a screenful came in
                return
            await self._append([m for m in fresh if not rt.wrote_message(m.id)])
            self.shown_seq = max(m.seq for m in fresh if m.seq is not None)

    async def _append(self, messages: list[ChatMessage]) -> None:
        log_ = self.app.chat_log
        ids = {w.message_id for w in log_.query(UserMessage)} | {w.message_id for w in log_.query(AssistantMessage)}
        blocks = {b.call_id: b for b in log_.query(ToolCallBlock)}
        novel: list[ChatMessage] = []
        for message in messages:
            if message.role in ("user", "assistant") and message.id in ids:
                continue  # on screen already: this terminal wrote it, or showed it before
            calls = message.tool_calls
            if message.role == "assistant" and not message.content and calls and all(c.id in blocks for c in calls):
                continue  # its tool blocks are on screen: this terminal ran them
            if message.role == "tool" and message.tool_call_id in blocks:
                block = blocks[message.tool_call_id or ""]
                if block.status == "running":
                    meta = message.metadata or {}
                    block.finish(
                        status=str(meta.get("status") or "ok"),
                        output=message.content,
                        duration_ms=float(meta.get("duration_ms") or 0.0),
                    )
                continue
            novel.append(message)
        widgets = render_history(novel)
        if not widgets:
            return
        await log_.add(*widgets)  # above messages still queued here (they are sent after)

    # ------------------------------------------------------------ running elsewhere

    def _show_line(self) -> None:
        lines = self.app.backend_lines
        if self.app.conversation_id is not None and self.app.conversation_id in self.elsewhere:
            lines.set(LINE, RUNNING_ELSEWHERE, "healing")
        elif LINE in lines.lines:
            lines.clear(LINE)

    async def _check_lock(self, conversation_id: str) -> None:
        rt = self.app.rt
        if rt is None:
            return
        running = await rt.turn_running_elsewhere(conversation_id)
        if running:
            self.elsewhere.add(conversation_id)
        else:
            self.elsewhere.discard(conversation_id)
        self._show_line()

    def _recheck_line(self) -> None:
        """While the line is shown, ask the lock now and then: the end notice may have been lost
        (Redis blinked) or the other process died (its lock expires)."""
        conv = self.app.conversation_id
        if conv is not None and conv in self.elsewhere:
            self.app.run_worker(self._check_lock(conv), group="live-lock", exit_on_error=False)
