"""RedisStateStore against the real redis-server: every operation, JSON-only values, locks, pub/sub."""

from __future__ import annotations

import asyncio

import pytest

from runtime.core.errors import ConflictError, ValidationError
from runtime.state.store import RedisStateStore
from tests.support.clock import FakeClock


async def test_set_get_delete_exists_roundtrip_json(state: RedisStateStore) -> None:
    value = {"name": 'O\'Brien "quoted"\nnewline', "n": 3, "f": 1.5, "ok": True, "none": None, "list": [1, "2"]}
    assert await state.set("profile", value)
    assert await state.get("profile") == value
    assert await state.exists("profile")
    assert await state.delete("profile")
    assert not await state.exists("profile")
    assert await state.get("profile") is None
    assert await state.get("profile", default="fallback") == "fallback"
    assert not await state.delete("profile")


async def test_namespaces_keep_equal_keys_apart(state: RedisStateStore, redis_client: object) -> None:
    await state.set("k", 1, namespace="a")
    await state.set("k", 2, namespace="b")
    assert (await state.get("k", namespace="a"), await state.get("k", namespace="b")) == (1, 2)
    keys = sorted(k.decode() for k in await redis_client.keys("*"))  # type: ignore[attr-defined]
    assert keys == ["t:a:k", "t:b:k"]


async def test_ttl_is_set_in_redis(state: RedisStateStore) -> None:
    await state.set("short", "x", ttl=30)
    await state.set("forever", "y")
    ttl = await state.ttl("short")
    assert ttl is not None and 29 < ttl <= 30
    assert await state.ttl("forever") is None


async def test_values_json_cannot_hold_are_refused_before_any_write(state: RedisStateStore) -> None:
    for bad in ({1, 2}, b"bytes", object(), float("nan"), {1: "int key"}, {"t": (1, {2, 3})}):
        with pytest.raises(ValidationError):
            await state.set("bad", bad)
    assert not await state.exists("bad")
    with pytest.raises(ValidationError, match="lone surrogate"):
        await state.set("bad", "abc\ud800def")


async def test_hash_operations(state: RedisStateStore) -> None:
    assert await state.hset("h", "a", {"x": 1})
    assert not await state.hset("h", "a", {"x": 2})  # existing field: updated, not new
    await state.hset("h", "b", [1, 2])
    assert await state.hget("h", "a") == {"x": 2}
    assert await state.hget("h", "missing") is None
    assert await state.hgetall("h") == {"a": {"x": 2}, "b": [1, 2]}


async def test_list_operations_keep_order(state: RedisStateStore) -> None:
    await state.rpush("l", "b")
    await state.rpush("l", {"c": 3})
    assert await state.lpush("l", "a") == 3
    assert await state.lrange("l", 0, -1) == ["a", "b", {"c": 3}]
    assert await state.lrange("l", -1, -1) == [{"c": 3}]


async def test_set_operations_accept_scalars_only(state: RedisStateStore) -> None:
    assert await state.sadd("s", "x") == 1
    assert await state.sadd("s", "x") == 0
    await state.sadd("s", 7)
    assert await state.smembers("s") == {"x", 7}
    with pytest.raises(ValidationError):
        await state.sadd("s", {"a": 1})


async def test_counters_are_atomic_under_concurrency(state: RedisStateStore) -> None:
    # 4 waves of 50 concurrent increments: concurrent enough to race a read-modify-write, few
    # enough connects at once that a loaded CI machine does not time them out.
    for _ in range(4):
        await asyncio.gather(*(state.increment("c") for _ in range(50)))
    assert await state.decrement("c", 50) == 150
    assert await state.increment("c", 10) == 160


async def test_wrong_type_is_a_validation_error(state: RedisStateStore) -> None:
    await state.set("scalar", 1)
    with pytest.raises(ValidationError, match="different kind"):
        await state.rpush("scalar", 2)


async def test_bad_namespace_or_key_is_refused(state: RedisStateStore) -> None:
    with pytest.raises(ValidationError):
        await state.set("k", 1, namespace="has space")
    with pytest.raises(ValidationError):
        await state.set("", 1)


# ---------------------------------------------------------------- locks


async def test_lock_acquire_release_and_non_owner_refused(state: RedisStateStore) -> None:
    token = await state.acquire_lock("res", timeout=10)
    assert token is not None and len(token) == 32
    assert await state.acquire_lock("res", timeout=10) is None
    assert not await state.release_lock("res", "not-the-token")
    assert await state.exists("res", namespace="lock")
    assert await state.release_lock("res", token)
    assert await state.acquire_lock("res", timeout=10) is not None


async def test_lock_expires_and_old_owner_cannot_release_new_owners_lock(
    state: RedisStateStore, redis_client: object
) -> None:
    old = await state.acquire_lock("res", timeout=30)
    assert old is not None
    # Expire it server-side instead of sleeping through the timeout.
    await redis_client.pexpire(state.full_key("res", "lock"), 1)  # type: ignore[attr-defined]
    new = None
    for _ in range(200):
        new = await state.acquire_lock("res", timeout=30)
        if new:
            break
        await redis_client.ping()  # type: ignore[attr-defined]  # a round trip gives the 1 ms expiry time
    assert new is not None and new != old
    assert not await state.release_lock("res", old)
    assert not await state.extend_lock("res", old, 60)
    assert await state.extend_lock("res", new, 60)
    ttl = await state.ttl("res", namespace="lock")
    assert ttl is not None and ttl > 30


async def test_lock_mutual_exclusion_under_20_contenders(state: RedisStateStore) -> None:
    holders = 0
    max_holders = 0
    entered = []

    async def contender(i: int) -> None:
        nonlocal holders, max_holders
        async with state.lock("shared", timeout=10, wait=60):
            holders += 1
            max_holders = max(max_holders, holders)
            # Real Redis I/O inside the critical section so others really interleave.
            value = await state.get("counter", default=0)
            await state.set("counter", value + 1)
            entered.append(i)
            holders -= 1

    await asyncio.gather(*(contender(i) for i in range(20)))
    assert max_holders == 1
    assert sorted(entered) == list(range(20))
    assert await state.get("counter") == 20  # a read-modify-write that only a lock makes safe
    assert not await state.exists("shared", namespace="lock")


async def test_lock_wait_is_bounded(state: RedisStateStore, mono: FakeClock) -> None:
    assert await state.acquire_lock("busy", timeout=60)
    before = mono()
    with pytest.raises(ConflictError, match="held by someone else"):
        async with state.lock("busy", timeout=10, wait=2.0):
            pytest.fail("must not enter")
    assert 2.0 <= mono() - before < 2.5


# ---------------------------------------------------------------- pub/sub


async def test_publish_subscribe_json_messages(state: RedisStateStore) -> None:
    async with state.subscribe("news", "other") as sub:
        assert await state.publish("news", {"headline": "it works", "n": 1}) == 1
        assert await state.publish("other", "plain") == 1
        got = [await sub.get(timeout=2.0), await sub.get(timeout=2.0)]
    assert got == [("news", {"headline": "it works", "n": 1}), ("other", "plain")]
    assert await state.publish("news", "nobody listening") == 0
