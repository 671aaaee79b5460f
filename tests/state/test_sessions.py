"""SessionManager on the real redis-server: TTL, extend cap, atomic updates, indexes, cleanup."""

from __future__ import annotations

import asyncio

import pytest

from runtime.state.client import RedisRunner
from runtime.state.keys import Keys
from runtime.state.sessions import SessionManager
from tests.support.clock import FakeClock
from tests.support.state import CountingConnection, RunnerFactory


async def test_create_sets_one_hour_ttl_and_strong_id(sessions: SessionManager, redis_client: object) -> None:
    session = await sessions.create_session("alice", {"theme": "dark"})
    assert session.expires_at - session.created_at == 3600
    ttl = await redis_client.ttl(Keys("t").session(session.id))  # type: ignore[attr-defined]
    assert 3590 <= ttl <= 3600
    # token_urlsafe(24): 32 characters carrying 192 random bits.
    ids = {(await sessions.create_session("alice")).id for _ in range(20)} | {session.id}
    assert len(ids) == 21 and all(len(i) == 32 for i in ids)
    got = await sessions.get_session(session.id)
    assert got is not None and got.data == {"theme": "dark"} and got.user_id == "alice"


# Counts packets on one server's connections (the cluster client builds its own per node).
@pytest.mark.single_redis
async def test_get_refreshes_last_accessed_in_one_round_trip(
    redis_url: str, make_runner: RunnerFactory, wall: FakeClock
) -> None:
    runner = make_runner(redis_url, connection_class=CountingConnection)
    manager = SessionManager(runner, key_prefix="t", clock=wall)
    session = await manager.create_session("bob")
    await manager.get_session(session.id)  # loads the script once
    wall.advance(120)
    before = CountingConnection.sent
    got = await manager.get_session(session.id)
    assert CountingConnection.sent - before == 1
    assert got is not None and got.last_accessed == session.created_at + 120
    again = await manager.get_session(session.id)
    assert again is not None and again.last_accessed == got.last_accessed


async def test_missing_expired_or_malformed_session_is_none(sessions: SessionManager, wall: FakeClock) -> None:
    session = await sessions.create_session("carol")
    assert await sessions.get_session("no-such-session") is None
    assert await sessions.get_session("{bad id}\n") is None
    wall.advance(3601)
    assert await sessions.get_session(session.id) is None
    assert not await sessions.update_session(session.id, {"a": 1})
    assert not await sessions.extend_session(session.id)


async def test_concurrent_updates_lose_no_fields(sessions: SessionManager) -> None:
    session = await sessions.create_session("dave", {"keep": "me"})
    await asyncio.gather(*(sessions.update_session(session.id, {f"field{i}": i}) for i in range(50)))
    got = await sessions.get_session(session.id)
    assert got is not None
    assert got.data == {"keep": "me", **{f"field{i}": i for i in range(50)}}


async def test_extend_is_capped_at_created_plus_max_ttl(
    sessions: SessionManager, wall: FakeClock, redis_client: object
) -> None:
    session = await sessions.create_session("erin")
    wall.advance(3000)
    assert await sessions.extend_session(session.id, 7200)
    got = await sessions.get_session(session.id)
    assert got is not None and got.expires_at == session.created_at + 3000 + 7200
    wall.advance(7000)  # 10,000 s after creation, 200 s before expiry
    assert await sessions.extend_session(session.id, 80_000)  # would end at 90,000 s: capped at 24 h
    got = await sessions.get_session(session.id)
    assert got is not None and got.expires_at == session.created_at + 86_400
    ttl = await redis_client.ttl(Keys("t").session(session.id))  # type: ignore[attr-defined]
    assert 76_390 <= ttl <= 76_400  # 86,400 - 10,000 seconds left
    # A short extension never shortens the session.
    assert await sessions.extend_session(session.id, 10)
    got = await sessions.get_session(session.id)
    assert got is not None and got.expires_at == session.created_at + 86_400


async def test_delete_removes_session_and_its_index_entries(sessions: SessionManager, redis_client: object) -> None:
    session = await sessions.create_session("frank")
    assert await sessions.delete_session(session.id)
    assert await sessions.get_session(session.id) is None
    assert not await sessions.delete_session(session.id)
    keys = Keys("t")
    assert await redis_client.zcard(keys.user_sessions("frank")) == 0  # type: ignore[attr-defined]
    assert await redis_client.zcard(keys.session_expiry()) == 0  # type: ignore[attr-defined]


async def test_user_sessions_lists_live_ones_and_prunes_dead_ids(
    sessions: SessionManager, wall: FakeClock, redis_client: object
) -> None:
    old = await sessions.create_session("gina")
    wall.advance(1800)
    newer = await sessions.create_session("gina")
    vanished = await sessions.create_session("gina")
    await redis_client.delete(Keys("t").session(vanished.id))  # type: ignore[attr-defined]  # as if Redis expired it
    await sessions.create_session("someone-else")
    listed = await sessions.get_user_sessions("gina")
    assert [s.id for s in listed] == [newer.id, old.id]
    index = Keys("t").user_sessions("gina")
    assert await redis_client.zcard(index) == 2  # type: ignore[attr-defined]
    wall.advance(1801)  # the first session is now past its expiry
    assert [s.id for s in await sessions.get_user_sessions("gina")] == [newer.id]
    assert await redis_client.zcard(index) == 1  # type: ignore[attr-defined]


async def test_cleanup_uses_the_expiry_index_and_spares_extended_sessions(
    sessions: SessionManager, wall: FakeClock, redis_client: object
) -> None:
    doomed = [await sessions.create_session(f"user{i}") for i in range(5)]
    kept = await sessions.create_session("keeper")
    wall.advance(3000)
    assert await sessions.extend_session(kept.id, 3600)
    wall.advance(700)  # the five are now expired; the extended one is not
    assert await sessions.cleanup_expired_sessions() == 5
    keys = Keys("t")
    for session in doomed:
        assert not await redis_client.exists(keys.session(session.id))  # type: ignore[attr-defined]
        assert await redis_client.zcard(keys.user_sessions(session.user_id)) == 0  # type: ignore[attr-defined]
    assert await sessions.get_session(kept.id) is not None
    assert await redis_client.zcard(keys.session_expiry()) == 1  # type: ignore[attr-defined]
    assert await sessions.cleanup_expired_sessions() == 0


async def test_cleanup_works_in_batches(runner: RedisRunner, wall: FakeClock) -> None:
    manager = SessionManager(runner, key_prefix="t", clock=wall, cleanup_batch=7)
    for i in range(30):
        await manager.create_session(f"u{i}")
    wall.advance(4000)
    assert await manager.cleanup_expired_sessions() == 30


async def test_active_conversation_is_tracked(sessions: SessionManager) -> None:
    session = await sessions.create_session("hank")
    assert await sessions.set_active_conversation(session.id, "conv_abc")
    got = await sessions.get_session(session.id)
    assert got is not None and got.active_conversation_id == "conv_abc"
    assert await sessions.set_active_conversation(session.id, None)
    got = await sessions.get_session(session.id)
    assert got is not None and got.active_conversation_id is None


async def test_last_conversation_is_kept_per_user_apart_from_any_session(sessions: SessionManager) -> None:
    assert await sessions.last_conversation("ivy") is None
    session = await sessions.create_session("ivy")
    await sessions.remember_last_conversation("ivy", "conv_one")
    await sessions.remember_last_conversation("ivy", "conv_two")
    await sessions.remember_last_conversation("jack", "conv_jack")
    assert await sessions.delete_session(session.id)
    # The session is gone (an orderly stop); where the user was survives it, per user.
    assert await sessions.last_conversation("ivy") == "conv_two"
    assert await sessions.last_conversation("jack") == "conv_jack"
