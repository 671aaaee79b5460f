"""Live updates (issue 19): a change written by any process reaches every process of the same user
on the same Redis (one server, and a real cluster), and no process of another user.

Each "process" has its own Redis client, ConversationStore and LiveUpdates, as two Holdfast
processes would; only Redis joins them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtime.config import RedisConfig, ResilienceConfig, ServiceResilience
from runtime.core.events import EventBus, StoreRecovered, TurnFinished, UserSaved
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore
from runtime.state.embedded_redis import EmbeddedRedis
from runtime.state.live import ConversationChanged, LiveUpdates, channel_prefix, parse
from tests.support.polling import wait_for
from tests.support.state import CountingConnection, RunnerFactory

CONFIG = RedisConfig(key_prefix="t")


@dataclass
class Proc:
    """One Holdfast process of ``user``: its store, its live updates, the changes it heard."""

    user: str
    store: ConversationStore
    live: LiveUpdates
    bus: EventBus
    heard: list[ConversationChanged] = field(default_factory=list)

    def of(self, kind: str) -> list[ConversationChanged]:
        return [c for c in self.heard if c.kind == kind]


@pytest.fixture
async def procs(redis_url: str, make_runner: RunnerFactory, tmp_path: Path) -> AsyncIterator[Callable[..., Proc]]:
    made: list[Proc] = []

    def make(user: str, *, watch: bool = True, url: str = "", runner: RedisRunner | None = None) -> Proc:
        runner = runner or make_runner(url or redis_url)
        bus = EventBus()
        store = ConversationStore(runner, CONFIG, journal_dir=tmp_path / f"journal{len(made)}", bus=bus)
        live = LiveUpdates(
            runner, key_prefix=CONFIG.key_prefix, user_id=user, bus=bus, retry_seconds=0.1, own_message=store.wrote
        )
        proc = Proc(user, store, live, bus)
        live.start()
        if watch:
            live.watch(proc.heard.append)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        await proc.live.stop()
        await proc.store.close()


async def _subscribed(*procs: Proc) -> None:
    for proc in procs:
        assert await proc.live.wait_subscribed(10.0), f"{proc.user}'s subscription was not established"


async def test_a_message_written_by_another_process_is_heard_within_a_second(procs: Callable[..., Proc]) -> None:
    writer, reader = procs("alice", watch=False), procs("alice")
    await _subscribed(reader)
    assert [c.kind for c in reader.heard] == ["resync"]  # every (re)subscription says so, the first too
    late: list[ConversationChanged] = []
    reader.live.watch(late.append)  # a watcher added once live is told so at once
    await wait_for(lambda: [c.kind for c in late] == ["resync"], 5.0, "the late watcher told it is live")
    conv = await writer.store.create("alice", title="New conversation")
    started = time.perf_counter()
    first = await writer.store.add_message(conv, "user", "hello from the other terminal")
    await wait_for(lambda: reader.of("message"), 5.0, "the append heard by the other process")
    latency = time.perf_counter() - started
    [change] = reader.of("message")
    assert (change.conversation_id, change.seq, change.message_id, change.message_count) == (conv, 0, first.id, 1)
    assert change.elsewhere  # the reader did not write it
    assert change.at > 0
    assert latency < 1.0, f"heard after {latency:.3f} s"
    # What the notice points at is what the other process reads from the store.
    [read] = await reader.store.read_tail(conv, 10)
    assert (read.id, read.seq, read.content) == (first.id, 0, "hello from the other terminal")

    second = await writer.store.add_message(conv, "assistant", "and the reply")
    await writer.store.rename(conv, 'Plans "for" Tuesday ✓')
    await writer.store.delete(conv)
    await wait_for(lambda: reader.of("deleted"), 5.0, "the delete heard")
    assert [(c.seq, c.message_id) for c in reader.of("message")] == [(0, first.id), (1, second.id)]
    # The creation is announced as a title (so a TUI lists it before its first message).
    assert [c.title for c in reader.of("title")] == ["New conversation", 'Plans "for" Tuesday ✓']
    assert [c.conversation_id for c in reader.of("deleted")] == [conv]


async def test_a_conversation_created_elsewhere_is_announced_once_it_is_listed(procs: Callable[..., Proc]) -> None:
    # Found by trying issue 19 in two TUIs: a conversation created by another process (POST
    # /v1/conversations, /new) stayed out of the sidebar until its first message.
    writer, reader = procs("alice", watch=False), procs("alice")
    await _subscribed(reader)
    conv = await writer.store.create("alice", title="Empty so far")
    await wait_for(lambda: reader.of("title"), 5.0, "the creation heard")
    [change] = reader.of("title")
    assert (change.conversation_id, change.title) == (conv, "Empty so far")
    assert change.at > 0
    # Heard only once it is in the user's index: the list the TUI reads again has it.
    assert conv in [c.id for c in await reader.store.list_conversations("alice")]
    # Creating an existing id changes nothing and is not announced again.
    await writer.store.create("alice", title="Again", conversation_id=conv)
    marker = await writer.store.create("alice", title="Marker")
    await wait_for(lambda: len(reader.of("title")) == 2, 5.0, "the marker's creation heard")
    assert [(c.conversation_id, c.title) for c in reader.of("title")] == [(conv, "Empty so far"), (marker, "Marker")]


async def test_a_retried_append_is_announced_once(procs: Callable[..., Proc]) -> None:
    writer, reader = procs("alice", watch=False), procs("alice")
    await _subscribed(reader)
    conv = await writer.store.create("alice")
    await writer.store.add_message(conv, "user", "once", message_id="msg-once")
    await writer.store.add_message(conv, "user", "once", message_id="msg-once")  # the idempotent retry
    await writer.store.add_message(conv, "user", "after", message_id="msg-after")
    await wait_for(lambda: len(reader.of("message")) == 2, 5.0, "two appends heard")
    assert [(c.seq, c.message_id) for c in reader.of("message")] == [(0, "msg-once"), (1, "msg-after")]


async def test_a_process_tells_its_own_messages_from_the_others(procs: Callable[..., Proc]) -> None:
    me, other = procs("alice"), procs("alice")
    await _subscribed(me, other)
    conv = await me.store.create("alice")
    mine = await me.store.add_message(conv, "user", "mine")
    theirs = await other.store.add_message(conv, "assistant", "theirs")
    await wait_for(lambda: len(me.of("message")) == 2, 5.0, "both appends heard")
    assert [(c.message_id, c.elsewhere) for c in me.of("message")] == [(mine.id, False), (theirs.id, True)]


async def test_another_users_process_never_hears_them(procs: Callable[..., Proc]) -> None:
    alice_writer, alice, bob = procs("alice", watch=False), procs("alice"), procs("bob")
    await _subscribed(alice, bob)
    mine = await alice_writer.store.create("alice")
    for text in ("one", "two", "three"):
        await alice_writer.store.add_message(mine, "user", text)
    await alice_writer.store.rename(mine, "alice's secret plans")
    theirs = await bob.store.create("bob")
    bobs = await bob.store.add_message(theirs, "user", "bob's only message")
    await wait_for(lambda: bob.of("message"), 5.0, "bob's own append heard by bob")
    await wait_for(lambda: len(alice.of("message")) == 3 and alice.of("title"), 5.0, "alice's changes heard")
    # bob's own append came after alice's four changes on one connection: had he been sent any
    # of them, they would be here by now.
    assert [(c.conversation_id, c.message_id) for c in bob.of("message")] == [(theirs, bobs.id)]
    assert [c.conversation_id for c in bob.of("title")] == [theirs]  # his own creation only
    assert {c.conversation_id for c in alice.heard if c.kind != "resync"} == {mine}


def test_a_message_claiming_another_user_is_dropped() -> None:
    good = {"k": "m", "c": "conv_1", "u": "alice", "s": 3, "i": "m1", "t": 1.5}
    heard = ConversationChanged("message", "conv_1", seq=3, message_id="m1", elsewhere=True, at=1.5)
    assert parse(good, "alice") == heard
    assert parse(good, "alice", own_message={"m1"}.__contains__) == dataclasses.replace(heard, elsewhere=False)
    assert parse({**good, "u": "bob"}, "alice") is None
    assert parse({**good, "c": "conv{1}"}, "alice") is None  # not an id a key could hold
    assert parse({**good, "s": "3"}, "alice") is None
    assert parse("not a dict", "alice") is None
    turn = {"k": "turn", "c": "conv_1", "u": "alice", "run": True, "o": "host:1:ab"}
    assert parse(turn, "alice", "host:1:ab") == ConversationChanged("turn", "conv_1", running=True, elsewhere=False)
    assert parse(turn, "alice", "host:2:cd") == ConversationChanged("turn", "conv_1", running=True, elsewhere=True)


async def test_a_turn_is_announced_running_then_ended_to_the_other_processes(procs: Callable[..., Proc]) -> None:
    runner_proc, other = procs("alice"), procs("alice")
    await _subscribed(runner_proc, other)
    conv = await runner_proc.store.create("alice")
    # A turn that never got the lock (busy) ends without having started: nothing is announced.
    runner_proc.bus.publish(TurnFinished(conversation_id=conv, turn_id="t0", failed=True, stop_reason="busy"))
    runner_proc.bus.publish(UserSaved(conversation_id=conv, turn_id="t1", message_id="m1", content="hi"))
    await wait_for(lambda: other.of("turn"), 5.0, "the turn's start heard")
    runner_proc.bus.publish(TurnFinished(conversation_id=conv, turn_id="t1"))
    await wait_for(lambda: len(other.of("turn")) == 2, 5.0, "the turn's end heard")
    assert [(c.conversation_id, c.running, c.elsewhere) for c in other.of("turn")] == [
        (conv, True, True),
        (conv, False, True),
    ]
    await wait_for(lambda: len(runner_proc.of("turn")) == 2, 5.0, "its own notices heard by the process")
    assert [c.elsewhere for c in runner_proc.of("turn")] == [False, False]  # its own turn, not elsewhere


async def test_the_store_leaving_degraded_mode_asks_for_a_re_read(procs: Callable[..., Proc]) -> None:
    proc = procs("alice")
    await _subscribed(proc)
    proc.bus.publish(StoreRecovered(store="conversations", degraded_seconds=3.0))
    assert [c.kind for c in proc.heard] == ["resync", "resync"]  # its reads came from the local cache


@pytest.mark.single_redis
async def test_the_notice_rides_inside_the_append_one_round_trip(
    redis_url: str, make_runner: RunnerFactory, procs: Callable[..., Proc]
) -> None:
    listener = procs("alice")
    await _subscribed(listener)
    writer = procs("alice", watch=False, runner=make_runner(redis_url, connection_class=CountingConnection))
    conv = await writer.store.create("alice")
    await writer.store.add_message(conv, "user", "load the script")
    CountingConnection.sent = 0
    await writer.store.add_message(conv, "user", "one round trip")
    assert CountingConnection.sent == 1
    await wait_for(lambda: len(listener.of("message")) == 2, 5.0, "both appends heard")


# ---------------------------------------------------------------- Redis out and back


def _real_time_resilience() -> Resilience:
    redis = ServiceResilience(
        max_attempts=1, timeout=1.0, deadline=2.0, failure_threshold=2, minimum_calls=2, recovery_timeout=0.2
    )
    return Resilience(ResilienceConfig(redis=redis))


@pytest.mark.single_redis
async def test_updates_resume_after_redis_comes_back_and_journaled_messages_are_announced(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    clients = []
    try:

        def runner() -> RedisRunner:
            client = make_redis_client(server.url, socket_timeout=1.0)
            clients.append(client)
            return RedisRunner(client, _real_time_resilience().guard("redis"))

        writer, reader = procs("alice", watch=False, runner=runner()), procs("alice", runner=runner())
        await _subscribed(reader)
        conv = await writer.store.create("alice")
        await writer.store.add_message(conv, "user", "before the outage")
        await wait_for(lambda: reader.of("message"), 5.0, "the first append heard")

        server.kill()
        await wait_for(lambda: not reader.live.subscribed.is_set(), 10.0, "the subscription noticing the outage")
        journaled = await writer.store.add_message(conv, "user", "written while Redis is out")
        assert writer.store.degraded and journaled.seq is None

        server.start()
        await wait_for(lambda: reader.live.subscriptions >= 2, 20.0, "the subscription coming back by itself")
        assert [c.kind for c in reader.heard].count("resync") == 2  # "re-read what you show"
        report = await writer.store.replay()
        assert report.replayed == 1
        await wait_for(lambda: len(reader.of("message")) == 2, 5.0, "the replayed message announced")
        assert reader.of("message")[-1].message_id == journaled.id
        assert reader.of("message")[-1].seq == 1
    finally:
        for client in clients:
            await client.aclose()
        server.stop()


def test_the_channel_is_per_user_under_the_chan_tag() -> None:
    assert channel_prefix("holdfast") + "alice" == "holdfast:{chan}:conv.alice"
