"""Live updates: what changed in a user's conversations, told to every process on the same Redis.

A message written by any process (a TUI, ``holdfast chat``, a ``holdfast serve`` replica) is
announced on the owner's channel ``<prefix>:{chan}:conv.<user id>`` (the ``{chan}`` hash tag, see
:meth:`runtime.state.keys.Keys.channel`), so every TUI that has the conversation open reads the
new tail at once instead of at its next reload.

Publishing costs no round trip: the conversation scripts of :mod:`runtime.state.history` PUBLISH
from inside the append, retitle and delete they already run (one command each, as before):

* ``{"k": "m", "c": conv, "u": user, "s": seq, "i": message id, "t": time}`` a message appended;
* ``{"k": "t", "c": conv, "u": user, "title": title, "t": time}`` the conversation retitled;
* ``{"k": "d", "c": conv, "u": user}`` the conversation deleted.

:class:`LiveUpdates` adds the turn notices, from a background task beside the turn (two
PUBLISHes per turn, never on its path): ``{"k": "turn", "c": conv, "u": user, "run": true, "o":
origin}`` once this process's turn saved its user message (it holds the conversation's turn
lock), ``"run": false`` when that turn finished. ``origin`` names the process (host:pid:random).
They are best effort (one short attempt, not counted by the Redis breaker): a face that missed
one still asks the turn lock (:meth:`runtime.agent.turn_lock.TurnLocks.held_elsewhere`).

Receiving: :meth:`LiveUpdates.watch` subscribes (on first use) to the channel of this process's
user only, so a process never receives another user's updates; a message whose ``"u"`` is not
this user is dropped too. Listeners get :class:`ConversationChanged` values. While Redis is out
the subscription is retried every ``retry_seconds``; every time it is (re)established, the first
included, and when the conversation store leaves degraded mode (its reads came from the local
cache), listeners get a ``resync`` change: updates may have been missed, re-read what is shown.

Classic PUBLISH, not sharded (SPUBLISH): the notification comes from a script whose keys are in
the conversation's slot, and a sharded channel would have to share that slot, one channel per
conversation; a TUI would then subscribe to each of its user's conversations, and the embedded
redis-server (6.2) has no sharded pub/sub. On a Redis Cluster classic messages are relayed to
every node by the cluster bus (see ``docs/scaling.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio.client import PubSub

from runtime.core.errors import AppError
from runtime.core.events import Event, EventBus, StoreRecovered, TurnFinished, UserSaved
from runtime.core.tasks import cancel_within
from runtime.state import codec
from runtime.state.breaker_sync import instance_id
from runtime.state.client import RedisRunner, translated
from runtime.state.keys import Keys
from runtime.state.store import Subscription

log = logging.getLogger(__name__)

#: What changed: a message appended, a new title, the conversation deleted, a turn started or
#: ended, or ``resync`` (the subscription was (re)established, or the store left degraded mode:
#: changes may have been missed).
ChangeKind = Literal["message", "title", "deleted", "turn", "resync"]

_KINDS: dict[str, ChangeKind] = {"m": "message", "t": "title", "d": "deleted", "turn": "turn"}

#: Seconds :meth:`LiveUpdates.stop` waits for unsent turn notices, then for its tasks.
STOP_TIMEOUT = 1.0
#: Seconds one turn notice may take before it is given up.
NOTICE_TIMEOUT = 0.5


def channel_prefix(key_prefix: str) -> str:
    """``<key prefix>:{chan}:conv.``: a user's live channel is this plus the user id."""
    return Keys(key_prefix).channel("conv.")


@dataclass(frozen=True)
class ConversationChanged:
    """One change to one of this user's conversations, as a face shows it.

    ``seq`` (``message``): the new message's position in the conversation, from 0, so the
    conversation now holds ``seq + 1`` messages (:attr:`message_count`); ``message_id`` is its
    idempotent id. ``title``: the new title (``title``). ``running`` (``turn``): True when a
    turn started, False when it ended. ``elsewhere``: the message was written, or the turn
    runs, in another process (or another runtime); False for this process's own, which its
    face already shows.
    ``at``: epoch seconds of the change (0 when not told). ``resync`` has no conversation id.
    """

    kind: ChangeKind
    conversation_id: str = ""
    seq: int | None = None
    message_id: str | None = None
    title: str | None = None
    running: bool | None = None
    elsewhere: bool = False
    at: float = 0.0

    @property
    def message_count(self) -> int | None:
        """How many messages the conversation holds after this append (None for other kinds)."""
        return None if self.seq is None else self.seq + 1


def parse(
    payload: object, user_id: str, instance: str = "", own_message: Callable[[str], bool] | None = None
) -> ConversationChanged | None:
    """The change a channel message describes, or None when it is malformed or belongs to
    another user than ``user_id`` (never acted on). ``instance`` is this process's origin (turn
    notices from it are not ``elsewhere``); ``own_message(id)`` tells this process's own
    messages (None: every message counts as written elsewhere)."""
    if not isinstance(payload, dict) or payload.get("u") != user_id:
        return None
    kind = _KINDS.get(str(payload.get("k")))
    conv = payload.get("c")
    if kind is None or not isinstance(conv, str):
        return None
    try:
        codec.check_id(conv, "conversation_id")
        at = float(payload.get("t") or 0.0)
        if kind == "message":
            seq, message_id = payload.get("s"), payload.get("i")
            if not isinstance(seq, int) or seq < 0 or not isinstance(message_id, str):
                return None
            elsewhere = own_message is None or not own_message(message_id)
            return ConversationChanged(kind, conv, seq=seq, message_id=message_id, elsewhere=elsewhere, at=at)
        if kind == "title":
            title = payload.get("title")
            return ConversationChanged(kind, conv, title=title, at=at) if isinstance(title, str) else None
        if kind == "turn":
            running = payload.get("run")
            if not isinstance(running, bool):
                return None
            return ConversationChanged(kind, conv, running=running, elsewhere=payload.get("o") != instance)
        return ConversationChanged(kind, conv, at=at)
    except (AppError, TypeError, ValueError):
        return None


Listener = Callable[[ConversationChanged], None]


class LiveUpdates:
    """This process's side of live updates for one user (see the module docstring).

    Args:
        runner: the guarded Redis runner (subscribe, turn notices).
        key_prefix: the configured key prefix (the channel lives under it).
        user_id: whose conversations this process shows; the only channel it subscribes to.
        bus: the runtime's EventBus; its :class:`UserSaved` and :class:`TurnFinished` become turn
            notices (None: no turn notices).
        retry_seconds: the wait before subscribing again after Redis failed (seconds).
        instance: this process's origin (default :func:`runtime.state.breaker_sync.instance_id`).
        own_message: tells the ids of messages this process appended
            (:meth:`runtime.state.conversations.ConversationStore.wrote`); their changes are not
            ``elsewhere``.
        sleep: awaited between subscription attempts (injected for tests).
    """

    def __init__(
        self,
        runner: RedisRunner,
        *,
        key_prefix: str,
        user_id: str,
        bus: EventBus | None = None,
        retry_seconds: float = 1.0,
        instance: str | None = None,
        own_message: Callable[[str], bool] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._runner = runner
        self.user_id = user_id
        self.channel = channel_prefix(key_prefix) + user_id
        self._bus = bus
        self._retry = retry_seconds
        self._sleep = sleep
        self.instance = instance or instance_id()
        self._own_message = own_message
        self._listeners: list[Listener] = []
        self._outbox: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        #: Conversations with a turn of this process between its saved user message and its end.
        self._running: set[str] = set()
        self._remove: Callable[[], None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        #: Set while the subscription is established (tests and start-up wait on it).
        self.subscribed = asyncio.Event()
        #: How many times the subscription was established (1 after the first; more after outages).
        self.subscriptions = 0

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start sending this process's turn notices (the subscription starts with :meth:`watch`)."""
        if self._bus is not None and self._remove is None:
            self._remove = self._bus.add_listener(self._on_event)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="live-updates-send")

    def watch(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` (in the event loop's thread) with every change to this user's
        conversations, from any process; returns the function that stops it. The first watcher
        starts the subscription in the background. A ``resync`` change tells a watcher it is live
        (at once when the subscription already is) and then each resubscription after an outage."""
        self._listeners.append(listener)
        if self._listener_task is None or self._listener_task.done():
            self._listener_task = asyncio.create_task(self._listen(), name="live-updates-listen")
        elif self.subscribed.is_set():
            asyncio.get_running_loop().call_soon(self._tell, listener, ConversationChanged("resync"))

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def wait_subscribed(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - a bounded wait
        """True once the subscription is established (within ``timeout`` seconds), else False."""
        try:
            async with asyncio.timeout(timeout):
                await self.subscribed.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Send the turn notices still queued (at most :data:`STOP_TIMEOUT` s, so a ``holdfast
        chat`` that ends right after its turn still says the turn ended), then stop the tasks."""
        if self._remove is not None:
            self._remove()
            self._remove = None
        if self._sender is not None and not self._sender.done() and not self._outbox.empty():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), STOP_TIMEOUT)
        tasks = [t for t in (self._sender, self._listener_task) if t is not None]
        self._sender = self._listener_task = None
        await cancel_within(tasks, STOP_TIMEOUT, "live updates", log)
        self._listeners.clear()

    # ------------------------------------------------------------ this process's turns

    def _on_event(self, event: Event) -> None:
        if isinstance(event, UserSaved):
            if event.conversation_id not in self._running:
                self._running.add(event.conversation_id)
                self._outbox.put_nowait((event.conversation_id, True))
        elif isinstance(event, TurnFinished) and event.conversation_id in self._running:
            self._running.discard(event.conversation_id)
            self._outbox.put_nowait((event.conversation_id, False))
        elif isinstance(event, StoreRecovered):
            # Reads came from the local cache while the store was degraded: re-read now.
            self._dispatch(ConversationChanged("resync"))

    async def _send(self) -> None:
        while True:
            conversation_id, running = await self._outbox.get()
            try:
                await self.publish_turn(conversation_id, running)
            except AppError as exc:  # the lock check still tells the other faces
                log.info("live updates: turn notice for %s not sent: %s", conversation_id, exc)
            finally:
                self._outbox.task_done()

    async def publish_turn(self, conversation_id: str, running: bool) -> int:
        """Tell this user's other processes that a turn of ``conversation_id`` started (``running``)
        or ended here; returns how many subscribers heard it.

        Best effort, so outside ``Guard("redis")``: one attempt of at most
        :data:`NOTICE_TIMEOUT` seconds, and a failure is not counted by the Redis breaker (two
        notices per turn would otherwise trip it sooner in an outage and hold back the journal's
        replay when Redis returns). A lost notice costs little: faces also ask the turn lock.
        Raises the AppErrors of :func:`runtime.state.client.translate`.
        """
        data = codec.dumps(
            {"k": "turn", "c": conversation_id, "u": self.user_id, "run": running, "o": self.instance}, "notice"
        )
        published = await translated(
            asyncio.wait_for(self._runner.client.publish(self.channel, data), NOTICE_TIMEOUT), "PUBLISH"
        )
        return int(published)

    # ------------------------------------------------------------ other processes' changes

    async def _listen(self) -> None:
        while True:
            try:
                await self._subscribed_session()
            except AppError as exc:
                log.warning("live updates: subscription lost (%s); again in %.1fs", exc, self._retry)
            except Exception:  # live updates must never end for good: log and resubscribe
                log.exception("live updates: subscription failed; again in %.1fs", self._retry)
            await self._sleep(self._retry)

    async def _subscribed_session(self) -> None:
        pubsub = self._runner.client.pubsub(ignore_subscribe_messages=True)
        channel = self.channel
        try:
            await self._runner.run(lambda r: pubsub.subscribe(channel), "SUBSCRIBE")
            self.subscriptions += 1
            self.subscribed.set()
            self._dispatch(ConversationChanged("resync"))
            sub = Subscription(pubsub, 0)
            while True:
                item = await sub.get(timeout=1.0)
                if item is not None:
                    change = parse(item[1], self.user_id, self.instance, self._own_message)
                    if change is not None:
                        self._dispatch(change)
        finally:
            self.subscribed.clear()
            await _close(pubsub)

    def _dispatch(self, change: ConversationChanged) -> None:
        for listener in tuple(self._listeners):
            self._tell(listener, change)

    def _tell(self, listener: Listener, change: ConversationChanged) -> None:
        if listener not in self._listeners:
            return  # stopped meanwhile
        try:
            listener(change)
        except Exception:  # one broken face must not silence the others
            log.exception("live updates listener failed on %s", change.kind)


async def _close(pubsub: PubSub, timeout: float = 0.5) -> None:  # noqa: ASYNC109 - a bounded wait
    """Unsubscribe (reading the confirmation, so a later PUBLISH no longer counts us) and close;
    failures are ignored, the connection is closed in any case."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await translated(pubsub.unsubscribe(), "UNSUBSCRIBE")
            while pubsub.subscribed:
                await pubsub.get_message(ignore_subscribe_messages=False, timeout=0.05)
    with contextlib.suppress(Exception):
        await pubsub.aclose()
