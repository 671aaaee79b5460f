"""Breakers that learn from each other: one process's breaker opening or closing reaches the fleet.

Each process still decides locally: a breaker's admission (``acquire``) never touches Redis. What
this module adds runs beside the hot path, in background tasks:

* every local ``closed -> open`` and ``-> closed`` transition (a :class:`BreakerStateChanged` on
  the process's EventBus) is published on the pub/sub channel ``breakers`` as
  ``{"name", "state", "origin", "reason"}``;
* a process that hears a peer's ``open`` force-opens its own breaker of that name at once, so it
  rejects calls without sending a request (about a millisecond after the peer's transition on
  loopback; the issue asks for 1 s); a peer's ``closed`` closes it again;
* one process at a time probes a recovering backend across the fleet: the process that opens a
  breaker takes a Redis lease ``<prefix>:{fleet}:probe:<name>`` (``SET NX PX``) and keeps it
  while its breaker is not closed; every other process stays force-opened (no probes). When the
  holder dies its lease expires after ``lease_seconds`` and one of the others takes it over,
  turning its forced open into an ordinary one (recovery timeout, then its half-open probe).

The ``redis`` breaker is not shared (it cannot be told about over the Redis it protects).
Redis being down only pauses the sharing; every process keeps its own breakers as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from runtime.core.errors import AppError
from runtime.core.events import BreakerStateChanged, Event, EventBus
from runtime.core.tasks import cancel_within
from runtime.resilience.breaker import BreakerRegistry, CircuitBreaker, CircuitState
from runtime.state.client import RedisRunner
from runtime.state.store import RedisStateStore

log = logging.getLogger(__name__)

#: The pub/sub channel (under the key prefix, see ``Keys.channel``).
CHANNEL = "breakers"

# Delete / extend the lease only while it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def instance_id() -> str:
    """``host:pid:random``: names this process in messages and leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


#: Seconds :meth:`BreakerSync.stop` waits for its tasks, and then for giving back its leases.
STOP_TIMEOUT = 2.0


class BreakerSync:
    """Shares breaker transitions of one process's :class:`BreakerRegistry` with every other
    process on the same Redis (see the module docstring).

    Args:
        store: the process's :class:`RedisStateStore` (publish/subscribe).
        runner: the guarded Redis runner (leases).
        breakers: the registry whose breakers are shared.
        bus: the EventBus the breakers publish their transitions on.
        key_prefix: the configured key prefix (the lease keys live under it).
        lease_seconds: how long a probe lease lives without renewal (seconds); renewed every third.
        retry_seconds: the wait before subscribing again after Redis failed (seconds).
        skip: breaker names never shared (``redis``).
        instance: this process's id (default :func:`instance_id`).
        scope: ``scope(name)`` names the backend behind breaker ``name`` (e.g. a hash of the LLM's
            endpoint URL), "" when the name alone identifies it. Only processes whose breaker of
            that name guards the same backend learn from each other and share a probe lease: two
            processes that each run their own demo LLM keep their ``llm`` breakers apart.
    """

    def __init__(
        self,
        store: RedisStateStore,
        runner: RedisRunner,
        breakers: BreakerRegistry,
        bus: EventBus,
        *,
        key_prefix: str = "holdfast",
        lease_seconds: float = 5.0,
        retry_seconds: float = 1.0,
        skip: frozenset[str] = frozenset({"redis"}),
        instance: str | None = None,
        scope: Callable[[str], str] | None = None,
    ) -> None:
        self._store = store
        self._runner = runner
        self._breakers = breakers
        self._bus = bus
        self._prefix = key_prefix
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._retry = retry_seconds
        self._skip = skip
        self.instance = instance or instance_id()
        self._scope: Callable[[str], str] = scope or (lambda _name: "")
        self._release = runner.client.register_script(_RELEASE)
        self._renew = runner.client.register_script(_RENEW)
        self._outbox: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._applying: str | None = None
        #: Breakers force-opened because a peer opened them (this process does not probe them).
        self._peer_open: set[str] = set()
        #: Breakers whose probe lease this process holds.
        self._leases: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._remove: Callable[[], None] | None = None
        self._listening = asyncio.Event()
        #: ``(breaker name, state)`` of each peer message applied here, newest last (at most 1,000).
        self.applied: list[tuple[str, str]] = []

    def lease_key(self, name: str) -> str:
        """``<prefix>:{fleet}:probe:<name>[@<scope>]``: who probes breaker ``name`` (of the backend
        ``scope`` names, when it does) for the fleet."""
        scope = self._scope(name)
        return f"{self._prefix}:{{fleet}}:probe:{name}" + (f"@{scope}" if scope else "")

    # ------------------------------------------------------------ life cycle

    async def start(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - a startup bound, not a call's
        """Start listening and publishing; True once subscribed (within ``timeout`` seconds),
        False if Redis did not answer in time (the tasks keep trying in the background)."""
        self._remove = self._bus.add_listener(self._on_event)
        self._tasks = [
            asyncio.create_task(self._listen(), name="breaker-sync-listen"),
            asyncio.create_task(self._send(), name="breaker-sync-send"),
            asyncio.create_task(self._keep_leases(), name="breaker-sync-leases"),
        ]
        try:
            async with asyncio.timeout(timeout):
                await self._listening.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop the tasks and give back every lease held (best effort, errors logged)."""
        if self._remove is not None:
            self._remove()
            self._remove = None
        tasks, self._tasks = self._tasks, []
        await cancel_within(tasks, STOP_TIMEOUT, "breaker sync", log)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                for name in list(self._leases):
                    await self._give_back(name)
        except TimeoutError:
            log.warning("breaker sync: leases not given back within %.1f s (they expire on their own)", STOP_TIMEOUT)

    # ------------------------------------------------------------ local -> fleet

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, BreakerStateChanged) or event.name in self._skip:
            return
        if self._applying == event.name:
            return  # our own application of a peer's message: not news for the fleet
        if event.new_state == CircuitState.OPEN.value and event.old_state != CircuitState.OPEN.value:
            self._outbox.put_nowait((event.name, "open", event.reason))
        elif event.new_state == CircuitState.CLOSED.value:
            self._peer_open.discard(event.name)
            self._outbox.put_nowait((event.name, "closed", event.reason))

    async def _send(self) -> None:
        while True:
            name, state, reason = await self._outbox.get()
            try:
                if state == "open":
                    await self._publish(name, state, reason)
                    if not await self._take_lease(name):
                        # Another process probes this backend for the fleet: do not probe too.
                        self._apply(name, lambda b: b.force_open("another process probes it for the fleet"))
                        self._peer_open.add(name)
                else:
                    await self._publish(name, state, reason)
                    await self._give_back(name)
            except AppError as exc:
                log.warning("breaker sync: could not share %s %s: %s", name, state, exc)

    async def _publish(self, name: str, state: str, reason: str) -> None:
        message = {"name": name, "state": state, "origin": self.instance, "reason": reason, "scope": self._scope(name)}
        await self._store.publish(CHANNEL, message)

    # ------------------------------------------------------------ fleet -> local

    async def _listen(self) -> None:
        while True:
            try:
                async with self._store.subscribe(CHANNEL) as sub:
                    self._listening.set()
                    while True:
                        item = await sub.get(timeout=1.0)
                        if item is not None:
                            self._receive(item[1])
            except AppError as exc:
                log.warning("breaker sync: subscription lost (%s); again in %.1fs", exc, self._retry)
            await asyncio.sleep(self._retry)

    def _receive(self, message: Any) -> None:
        if not isinstance(message, dict) or message.get("origin") == self.instance:
            return
        name, state = str(message.get("name", "")), message.get("state")
        if not name or name in self._skip:
            return
        if str(message.get("scope", "")) != self._scope(name):
            return  # the same name for another backend (e.g. each process's own demo LLM)
        origin, reason = message.get("origin", "?"), message.get("reason", "")
        breaker = self._breakers.get(name)
        if state == "open":
            if breaker.state is not CircuitState.OPEN:
                self._apply(name, lambda b: b.force_open(f"opened in {origin}: {reason}"))
                self._peer_open.add(name)
                self._record(name, "open")
        elif state == "closed" and (name in self._peer_open or breaker.state is not CircuitState.CLOSED):
            self._peer_open.discard(name)
            self._apply(name, lambda b: b.force_closed(f"closed in {origin}"))
            self._record(name, "closed")

    def _apply(self, name: str, change: Callable[[CircuitBreaker], None]) -> None:
        self._applying = name
        try:
            change(self._breakers.get(name))
        finally:
            self._applying = None

    def _record(self, name: str, state: str) -> None:
        self.applied.append((name, state))
        del self.applied[:-1000]

    # ------------------------------------------------------------ the probe lease

    async def _take_lease(self, name: str) -> bool:
        key, me, ms = self.lease_key(name), self.instance, self._lease_ms
        got = await self._runner.run(lambda r: r.set(key, me, nx=True, px=ms), "probe lease")
        if got:
            self._leases.add(name)
            return True
        owner = await self._runner.run(lambda r: r.get(key), "probe lease owner")
        if owner is not None and owner.decode("utf-8") == me:
            self._leases.add(name)
            return True
        return False

    async def _give_back(self, name: str) -> None:
        if name not in self._leases:
            return
        self._leases.discard(name)
        key = self.lease_key(name)
        try:
            await self._runner.run(lambda r: self._release(keys=[key], args=[self.instance], client=r), "probe lease")
        except AppError as exc:
            log.warning("breaker sync: lease of %s not given back (%s); it expires by itself", name, exc)

    async def _renew_lease(self, name: str) -> bool:
        key, args = self.lease_key(name), [self.instance, str(self._lease_ms)]
        return bool(await self._runner.run(lambda r: self._renew(keys=[key], args=args, client=r), "probe lease"))

    async def _keep_leases(self) -> None:
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                for name in list(self._leases):
                    if not await self._renew_lease(name):
                        self._leases.discard(name)
                for name in list(self._peer_open):
                    # The prober went away (its lease expired): this process probes from now on.
                    if self._breakers.get(name).state is CircuitState.OPEN and await self._take_lease(name):
                        self._peer_open.discard(name)
                        self._apply(name, lambda b: b.trip("the process probing for the fleet went away"))
            except AppError as exc:
                log.warning("breaker sync: leases not kept (%s)", exc)
