"""This process's session: created when the runtime starts, kept alive while it runs, deleted at stop.

Each TUI or CLI process holds one session (the spec's ``SessionManager`` in
:mod:`runtime.state.sessions`) describing itself: the face (``tui``/``cli``), pid, host and the
conversation on screen. ``holdfast sessions`` lists them; a relaunch reopens the conversation
the user was last in through a per-user pointer written with every change of the active
conversation (it outlives the session, which is deleted at an orderly stop).

A background task extends the session every ``interval`` seconds (a third of the session TTL by
default, so two missed beats still leave it alive) and writes active-conversation changes as
soon as they are noted. Redis being down never stops the process: the keeper logs, keeps the
change pending and tries again (every ``retry_interval`` seconds while it holds no session).
The sleep is injected, so tests drive the beat without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from runtime.core.errors import AppError, describe
from runtime.state.sessions import Session, SessionManager

log = logging.getLogger(__name__)

#: Longest wait, in seconds, before trying again to create a session Redis refused.
RETRY_INTERVAL = 30.0
#: Seconds an orderly stop may spend writing the last state and deleting the session.
STOP_TIMEOUT = 2.0

Sleep = Callable[[float], Awaitable[None]]
JSONScalar = str | int | float | bool | None


class SessionKeeper:
    """Holds one session for ``user_id`` with ``metadata`` (JSON scalars: face, pid, host).

    ``interval`` (seconds between extensions) defaults to a third of the manager's TTL.
    Nothing here raises for a Redis outage; :attr:`session_id` is None while no session is held.
    """

    def __init__(
        self,
        sessions: SessionManager,
        user_id: str,
        metadata: Mapping[str, JSONScalar],
        *,
        interval: float | None = None,
        retry_interval: float = RETRY_INTERVAL,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.user_id = user_id
        self.metadata = dict(metadata)
        self.interval = interval if interval is not None else max(1.0, sessions.default_ttl / 3)
        self.retry_interval = min(retry_interval, self.interval)
        self._sleep = sleep
        self.session: Session | None = None
        #: The conversation on screen, and whether Redis has not been told yet.
        self.active: str | None = None
        self._dirty = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def session_id(self) -> str | None:
        """The id of the session held now, or None while Redis has refused to create one."""
        return self.session.id if self.session is not None else None

    async def open(self) -> None:
        """Create the session now (one round trip), and drop other sessions that expired.
        A Redis failure is logged; the background task tries again."""
        try:
            await self._ensure_session()
            await self._write_active()
        except AppError as exc:
            log.warning("could not create this process's session: %s", describe(exc))
            return
        try:
            removed = await self.sessions.cleanup_expired_sessions()
        except AppError as exc:
            log.info("expired-session cleanup skipped: %s", describe(exc))
        else:
            if removed:
                log.info("removed %d expired sessions", removed)

    def start(self) -> None:
        """Start the background beat (call from the event loop, after :meth:`open`)."""
        self._loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="session-keeper")

    def note_active(self, conversation_id: str) -> None:
        """The UI opened (or the CLI chats in) ``conversation_id``: record it soon (callable from any thread)."""
        if conversation_id == self.active and not self._dirty:
            return
        self.active = conversation_id
        self._dirty = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # written by open()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def beat(self) -> None:
        """One heartbeat: extend the session (create a new one if it expired or was deleted),
        then write a pending active conversation. Raises the AppError of a failed Redis call."""
        await self._ensure_session()
        await self._write_active()

    async def close(self) -> None:
        """Stop the beat, write the last active conversation and delete the session (bounded
        by :data:`STOP_TIMEOUT` seconds; a failure is only logged: the session expires anyway)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Bounded: a library that turns our cancellation into an error must not hang the stop.
            await asyncio.wait({task}, timeout=STOP_TIMEOUT)
            if task.done() and not task.cancelled():
                with contextlib.suppress(BaseException):
                    task.result()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                if self._dirty and self.active is not None:
                    await self.sessions.remember_last_conversation(self.user_id, self.active)
                    self._dirty = False
                if self.session is not None:
                    await self.sessions.delete_session(self.session.id)
                    self.session = None
        except (AppError, TimeoutError) as exc:
            log.warning("could not delete this process's session: %s", describe(exc))

    # ------------------------------------------------------------ internals

    async def _run(self) -> None:
        while True:
            woken = await self._wait(self.interval if self.session is not None else self.retry_interval)
            try:
                if woken and self.session is not None:
                    await self._write_active()
                else:
                    await self.beat()
            except AppError as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # The stop cancelled us mid-call and the call reported it as an error.
                    raise asyncio.CancelledError from exc
                log.warning("session heartbeat failed: %s", describe(exc))

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until :meth:`note_active` wakes us; True when woken."""
        if self._wake.is_set():
            self._wake.clear()
            return True
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
        self._wake.clear()
        return waker in done

    async def _ensure_session(self) -> None:
        if self.session is not None and await self.sessions.extend_session(self.session.id):
            return
        data: dict[str, JSONScalar] = dict(self.metadata)
        self.session = await self.sessions.create_session(self.user_id, data)
        self._dirty = self._dirty or self.active is not None
        log.debug("session %s created for %s", self.session.id, self.user_id)

    async def _write_active(self) -> None:
        if not self._dirty or self.active is None:
            return
        conversation_id = self.active
        if self.session is not None and not await self.sessions.set_active_conversation(
            self.session.id, conversation_id
        ):
            self.session = None  # expired or deleted behind our back: the next beat makes a new one
        await self.sessions.remember_last_conversation(self.user_id, conversation_id)
        if conversation_id == self.active:
            self._dirty = False
