"""A process killed mid-turn holds up its conversation for at most ~10 s, not 30 s.

Found by trying issue 19 as a user: a `holdfast serve` replica SIGKILLed while answering left
its turn lock to live out ``[agent].turn_lock_timeout`` (30 s). A retry on another replica, or
any other writer of that conversation (a TUI showed "running elsewhere" all that time), waited
29 s, as long as its own wait, so it could also fail as busy. The lock now lives at most
``MAX_LOCK_TTL`` between keep-alives. Real parts: the `holdfast chat` console script, killed by
pid during a turn the demo LLM answers slowly, a redis-server, a second `holdfast chat`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import redis

from runtime.agent.turn_lock import MAX_LOCK_TTL
from runtime.demo.launcher import DemoLLMServer
from tests.support.cli import run_script, start_script, stop
from tests.support.polling import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def slow_llm() -> Iterator[str]:
    """A demo LLM that takes 8 s before each answer: the turn is running when the test kills it."""
    server = DemoLLMServer(tokens_per_second=0, latency=8.0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_writer_killed_mid_turn_frees_its_conversation_within_the_lock_ttl(redis_url: str, slow_llm: str) -> None:
    env = {"REDIS_URL": redis_url, "HOLDFAST_LLM__BASE_URL": slow_llm, "HOLDFAST_LLM__MODEL": "holdfast-demo"}
    first = run_script("chat", "start", "--new", "--json", env=env)
    assert first.code == 0, first.err
    conv = next(e["conversation_id"] for e in first.json_lines() if e.get("conversation_id"))
    client = redis.Redis.from_url(redis_url)
    lock = f"holdfast:lock:turn:{conv}"
    try:
        writer = start_script("chat", "--conversation", conv, "a turn that dies", env=env)
        try:
            wait_until(lambda: client.exists(lock) == 1, 60, "the writer's turn lock in Redis")
            left = client.pttl(lock) / 1000
        finally:
            stop(writer, signal.SIGKILL)
        killed = time.monotonic()
        assert 0 < left <= MAX_LOCK_TTL, f"the turn lock lives {left:.1f} s"
        wait_until(lambda: client.exists(lock) == 0, MAX_LOCK_TTL + 2, "the dead writer's lock to expire")
        freed = time.monotonic() - killed
        print(f"\nturn lock of the killed writer gone {freed:.1f} s after the kill (ttl {MAX_LOCK_TTL:g} s)")
        assert freed <= MAX_LOCK_TTL + 1
        # The next writer of the conversation gets its turn (no busy error).
        after = run_script("chat", "--conversation", conv, "after the kill", env=env)
        assert after.code == 0, after.err
        assert 'You said: "after the kill"' in after.out
    finally:
        client.close()
