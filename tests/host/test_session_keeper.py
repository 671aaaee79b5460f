"""The process's session on the real redis-server, with a fake wall clock and a gated sleep:
created at open, kept alive by the beat, recreated when lost, the active conversation recorded
(and remembered per user beyond the session), deleted at close."""

from __future__ import annotations

import asyncio
import os
import socket

from runtime.host.session_keeper import SessionKeeper
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.sessions import Session, SessionManager
from tests.support.clock import FakeClock
from tests.support.host import TTL
from tests.support.polling import wait_for
from tests.support.state import fast_resilience

FACTS = {"face": "tui", "pid": os.getpid(), "host": socket.gethostname()}


class GatedSleep:
    """An injected sleep that waits until the test lets it return: the test sees each requested
    delay (seconds) and decides when that much time has passed."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.requests.put((seconds, done))
        await done

    async def next(self) -> tuple[float, asyncio.Future[None]]:
        """The next sleep the keeper started: its delay and the future that ends it."""
        return await asyncio.wait_for(self.requests.get(), 10)


async def _only_session(sessions: SessionManager, user: str) -> Session:
    listed = await sessions.get_user_sessions(user)
    assert len(listed) == 1, listed
    return listed[0]


async def test_open_creates_a_session_that_says_which_process_holds_it(
    session_manager: SessionManager, wall: FakeClock
) -> None:
    keeper = SessionKeeper(session_manager, "alice", FACTS)
    await keeper.open()
    session = await _only_session(session_manager, "alice")
    assert session.id == keeper.session_id
    assert session.data == FACTS
    assert session.expires_at == wall() + TTL
    assert await session_manager.get_user_sessions("bob") == []


async def test_the_beat_keeps_a_running_process_alive(session_manager: SessionManager, wall: FakeClock) -> None:
    keeper = SessionKeeper(session_manager, "alice", FACTS)
    await keeper.open()
    first = keeper.session_id
    for _ in range(5):  # 1,000 s in all: more than three lifetimes
        wall.advance(200)
        await keeper.beat()
        session = await _only_session(session_manager, "alice")
        assert session.id == first and session.expires_at == wall() + TTL


async def test_without_a_beat_the_session_expires(session_manager: SessionManager, wall: FakeClock) -> None:
    keeper = SessionKeeper(session_manager, "alice", FACTS)
    await keeper.open()
    wall.advance(TTL + 1)  # a crashed process: nobody extends it
    assert await session_manager.get_user_sessions("alice") == []


async def test_a_session_lost_while_running_is_recreated_with_its_conversation(
    session_manager: SessionManager, wall: FakeClock
) -> None:
    keeper = SessionKeeper(session_manager, "alice", FACTS)
    keeper.note_active("conv_kept")
    await keeper.open()
    lost = keeper.session_id
    wall.advance(TTL + 1)  # e.g. the machine slept through every beat
    await keeper.beat()
    session = await _only_session(session_manager, "alice")
    assert session.id != lost
    assert session.active_conversation_id == "conv_kept" and session.data == FACTS


async def test_the_active_conversation_outlives_the_session_deleted_at_close(
    session_manager: SessionManager,
) -> None:
    keeper = SessionKeeper(session_manager, "alice", FACTS)
    keeper.note_active("conv_first")  # noted before start: written by open
    await keeper.open()
    session = await _only_session(session_manager, "alice")
    assert session.active_conversation_id == "conv_first"
    assert await session_manager.last_conversation("alice") == "conv_first"
    keeper.note_active("conv_second")  # not started: only pending, written at close
    await keeper.close()
    assert await session_manager.get_user_sessions("alice") == []
    assert await session_manager.last_conversation("alice") == "conv_second"


async def test_the_heartbeat_runs_on_the_injected_sleep_and_wakes_for_a_new_conversation(
    session_manager: SessionManager, wall: FakeClock
) -> None:
    gate = GatedSleep()
    keeper = SessionKeeper(session_manager, "alice", FACTS, sleep=gate)
    await keeper.open()
    keeper.start()
    try:
        seconds, done = await gate.next()
        assert seconds == TTL / 3  # two missed beats still leave the session alive
        wall.advance(seconds)
        done.set_result(None)

        async def extended() -> bool:
            return (await _only_session(session_manager, "alice")).expires_at == wall() + TTL

        await wait_for(extended, what="the session extended by the beat")
        _, pending = await gate.next()  # the next beat is waiting; a conversation change wakes it
        keeper.note_active("conv_now")

        async def recorded() -> bool:
            return (await _only_session(session_manager, "alice")).active_conversation_id == "conv_now"

        await wait_for(recorded, what="the active conversation written at once")
        assert pending.cancelled()  # woken, not timed out: no wall-clock wait anywhere
        assert await session_manager.last_conversation("alice") == "conv_now"
    finally:
        await keeper.close()
    assert await session_manager.get_user_sessions("alice") == []


async def test_redis_down_at_start_never_stops_the_process(wall: FakeClock) -> None:
    client = make_redis_client("redis://127.0.0.1:1/0")  # nothing listens there
    runner = RedisRunner(client, Resilience(fast_resilience()).guard("redis"))
    sessions = SessionManager(runner, key_prefix="t", default_ttl=TTL, clock=wall)
    keeper = SessionKeeper(sessions, "alice", FACTS)
    try:
        keeper.note_active("conv_offline")
        await keeper.open()  # logged, not raised
        assert keeper.session_id is None
        await keeper.close()  # nothing to delete; bounded, not raised
    finally:
        await client.aclose()
